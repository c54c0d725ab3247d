"""The oslo.metrics collector, with notifbus's metrics added.

::

    python -m notifbus.metrics.oslo_collector --config-file metrics.conf

runs ``oslo-metrics`` (same options: ``[oslo_metrics]
metrics_socket_file``, ``prometheus_port``...) with the definitions of
notifbus's metrics (module ``notifbus``) next to oslo.messaging's, so that
one collector exposes both. It needs the ``oslo.metrics`` package (which
brings ``prometheus_client``).
"""

from oslo_metrics import message_router
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from notifbus import metrics
from notifbus.metrics.oslo import MODULE


class _Child:
    """One labelled series: the actions oslo.metrics' router calls."""

    def __init__(self, samples, key, kind, buckets):
        self._samples, self._key = samples, key
        self._kind, self._buckets = kind, buckets

    def inc(self, value=1):
        self._samples[self._key] = self._samples.get(self._key, 0) + value

    def observe(self, value):
        if self._kind == "gauge":
            self._samples[self._key] = value
            return
        found = self._samples.get(self._key)
        if found is None:
            found = self._samples[self._key] = metrics.Histogram(
                self._buckets)
        for index, count in enumerate(value["buckets"][:len(found.counts)]):
            found.counts[index] += count
            found.count += count
        found.sum += value["sum"]


class Definition:
    """A metric as the router finds it: ``labels(**labels)`` gives the
    series to act on. Labels are those of the metric plus ``process``."""

    def __init__(self, metric):
        self.metric = metric
        self.labelnames = tuple(metric.labels) + ("process",)
        self.samples = {}
        self._buckets = (metrics.SEND_SECONDS_BUCKETS
                         if metric.unit == "seconds"
                         else metrics.BATCH_RECORDS_BUCKETS)

    def labels(self, **labels):
        if set(labels) != set(self.labelnames):
            raise ValueError(f"{self.metric.name} takes the labels "
                             f"{self.labelnames}, not {sorted(labels)}")
        key = tuple(str(labels[name]) for name in self.labelnames)
        return _Child(self.samples, key, self.metric.kind, self._buckets)


class Definitions(Collector):
    """notifbus's metrics for the collector: an attribute per metric name
    (what the router looks up), exposed through the Prometheus registry.
    """

    def __init__(self):
        self._all = [Definition(metric) for metric in metrics.METRICS]
        for definition in self._all:
            setattr(self, definition.metric.name, definition)

    def collect(self):
        from notifbus.metrics.prometheus import family

        for definition in self._all:
            labelled = definition.metric._replace(
                labels=definition.labelnames)
            yield family(labelled, dict(definition.samples))


class _Router(message_router.MessageRouter):
    definitions = None

    def __init__(self):
        super().__init__()
        self.modules[MODULE] = self.definitions


def main():
    """Run ``oslo-metrics`` with notifbus's definitions."""
    from oslo_metrics import __main__ as oslo_metrics_main

    _Router.definitions = Definitions()
    REGISTRY.register(_Router.definitions)
    message_router.MessageRouter = _Router
    oslo_metrics_main.main()


if __name__ == "__main__":
    main()
