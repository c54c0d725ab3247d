"""notifbus's metrics as Prometheus metrics (the ``prometheus`` extra:
``pip install notifbus[prometheus]``, which brings ``prometheus_client``).

A service that already exposes a ``prometheus_client`` registry adds
notifbus's collector to it::

    from notifbus.metrics import prometheus
    prometheus.register()                         # prometheus_client.REGISTRY
    prometheus_client.start_http_server(9464)     # if it exposes none yet

or sets ``[notifbus] prometheus_port`` (and ``prometheus_host``), which
does both when its first notifbus transport is created. The collector reads
the counters at each scrape (:func:`notifbus.metrics.collect`): between
scrapes it costs nothing.
"""

import threading

import prometheus_client
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from notifbus import metrics

_LOCK = threading.Lock()
_REGISTERED = {}  # id(registry) -> collector
_SERVED = {}  # (host, port) -> the exporter's server


def family(metric, samples=None):
    """The ``prometheus_client`` metric family of ``metric`` (a
    :class:`notifbus.metrics.Metric`), with ``samples`` (``{label values:
    int or Histogram}``)."""
    labels = list(metric.labels)
    if metric.kind == "counter":
        found = CounterMetricFamily(metric.name, metric.help, labels=labels)
    elif metric.kind == "gauge":
        found = GaugeMetricFamily(metric.name, metric.help, labels=labels)
    else:
        found = HistogramMetricFamily(metric.name, metric.help,
                                      labels=labels)
    for values, value in (samples or {}).items():
        values = [str(v) for v in values]
        if metric.kind == "histogram":
            found.add_metric(values, [(floatToGoString(bound), count)
                                      for bound, count in value.cumulative()],
                             sum_value=value.sum)
        else:
            found.add_metric(values, value)
    return found


class NotifbusCollector(Collector):
    """Every metric of :data:`notifbus.metrics.METRICS`, of every live
    notifbus transport of the process, read at each scrape."""

    def collect(self):
        for found in metrics.collect():
            yield family(found.metric, found.samples)

    def describe(self):
        for metric in metrics.METRICS:
            yield family(metric)


def register(registry=prometheus_client.REGISTRY):
    """Add notifbus's collector to ``registry`` (once; later calls return
    the same collector) and return it."""
    metrics.enable()
    with _LOCK:
        found = _REGISTERED.get(id(registry))
        if found is None:
            found = _REGISTERED[id(registry)] = NotifbusCollector()
            registry.register(found)
        return found


def serve(port, host="0.0.0.0", registry=prometheus_client.REGISTRY):
    """Register the collector in ``registry`` and serve it over HTTP at
    ``http://host:port/metrics`` (``prometheus_client.start_http_server``),
    once per process and address.

    :raises OSError: the port is taken (by another process, or another
        worker of the same service: give each its own port).
    """
    register(registry)
    with _LOCK:
        if (host, port) not in _SERVED:
            _SERVED[host, port] = prometheus_client.start_http_server(
                port, addr=host, registry=registry)
        return _SERVED[host, port]
