"""The metrics of notifbus: what they are, and a snapshot of their values.

Every notifbus transport counts what it does in a
:class:`~notifbus.bus.Counters`: integers, always counted (a send costs a
dictionary look-up and a few additions), and histograms, observed once an
exporter called :func:`enable`. This module names those numbers as metrics
(:data:`METRICS`), keeps a weak list of the live transports
(:func:`track`), and reads them all on demand
(:func:`collect`): nothing is computed, sent or exposed until an exporter
asks. The exporters:

* :mod:`notifbus.metrics.prometheus`: a ``prometheus_client`` collector,
  read at each scrape (the ``prometheus`` extra);
* :mod:`notifbus.metrics.oslo`: the deltas pushed to the oslo.metrics
  collector, as oslo.messaging pushes its own RPC metrics.

Labels: ``backend`` (the URL's backend name: ``kafka``, ``rdkafka``,
``nats``, ``memory``...), ``topic`` (the topic a record was sent to or read
from; for dead letters, the topic they were read from) and ``pool`` (the
listener's pool, or its consumer group: listener metrics only). Series of
transports with the same labels in one process are added up.
"""

import collections
import logging
import threading
import weakref
from bisect import bisect_left

from notifbus import errors

LOG = logging.getLogger(__name__)

#: Upper bounds of the send latency buckets, in seconds.
SEND_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                        0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: Upper bounds of the batch size buckets, in records.
BATCH_RECORDS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000,
                         5000)

PUBLISHER_LABELS = ("backend", "topic")
LISTENER_LABELS = ("backend", "topic", "pool")

#: One metric: its name without the ``_total`` of counters, its type
#: (``counter``, ``histogram`` or ``gauge``), its labels, its unit and what
#: it counts. ``field`` is the :class:`~notifbus.bus.Tally` attribute.
Metric = collections.namedtuple(
    "Metric", "name kind labels unit help field")

METRICS = (
    Metric("notifbus_sent", "counter", PUBLISHER_LABELS, "notifications",
           "Notifications handed to the transport to send (in buffered "
           "mode: buffered).", "sent"),
    Metric("notifbus_acked", "counter", PUBLISHER_LABELS, "notifications",
           "Notifications the broker acknowledged.", "acked"),
    Metric("notifbus_failed", "counter", PUBLISHER_LABELS, "notifications",
           "Notifications whose send failed for good: retries spent, too "
           "large, buffer full.", "failed"),
    Metric("notifbus_retried", "counter", PUBLISHER_LABELS, "attempts",
           "Send attempts made again after a failed one.", "retried"),
    Metric("notifbus_spooled", "counter", PUBLISHER_LABELS, "notifications",
           "Notifications the buffered sender could not deliver and wrote "
           "to its spool.", "spooled"),
    Metric("notifbus_delivered", "counter", LISTENER_LABELS, "records",
           "Records a listener handed to its dispatcher, redeliveries "
           "included.", "delivered"),
    Metric("notifbus_committed", "counter", LISTENER_LABELS, "commits",
           "Offsets a listener committed, one per partition per commit.",
           "committed"),
    Metric("notifbus_invalid", "counter", LISTENER_LABELS, "records",
           "Records read that are not notifications.", "invalid"),
    Metric("notifbus_dead_lettered", "counter", LISTENER_LABELS, "records",
           "Records written to the dead-letter topic (invalid ones, and "
           "notifications requeued more than max_redeliveries times).",
           "dead_lettered"),
    Metric("notifbus_redelivered", "counter", LISTENER_LABELS, "records",
           "Requeued notifications delivered again.", "redelivered"),
    Metric("notifbus_send_seconds", "histogram", PUBLISHER_LABELS, "seconds",
           "Time from a send to the broker's acknowledgement, retries "
           "included (buffered mode: from the batch's first attempt).",
           "send_seconds"),
    Metric("notifbus_batch_records", "histogram", PUBLISHER_LABELS,
           "records", "Records of one topic in one batch sent to the "
           "broker.", "batch_records"),
    Metric("notifbus_consumer_lag", "gauge", LISTENER_LABELS, "records",
           "Records between a listener's position and the end of the "
           "partitions it reads (Kafka: highwater minus position, as last "
           "fetched; NATS: the consumer's pending count). Not reported by "
           "backends that cannot tell without asking the broker.", None),
)

class Histogram:
    """Counts of observations per bucket, their sum and their count.

    ``buckets`` are the upper bounds, ascending; an observation above the
    last one counts only in the implicit ``+Inf`` bucket. Observed without
    a lock, as the counters are counted.
    """

    __slots__ = ("buckets", "counts", "sum", "count")

    def __init__(self, buckets):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # last one: +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value, times=1):
        self.counts[bisect_left(self.buckets, value)] += times
        self.sum += value * times
        self.count += times

    def merge(self, other):
        for index, count in enumerate(other.counts):
            self.counts[index] += count
        self.sum += other.sum
        self.count += other.count

    def cumulative(self):
        """``[(upper bound, observations at most that), ...]``, ending with
        ``(float("inf"), count)``, as Prometheus exposes buckets."""
        result, running = [], 0
        for bound, count in zip(self.buckets + (float("inf"),),
                                self.counts):
            running += count
            result.append((bound, running))
        return result

    def copy(self):
        twin = Histogram(self.buckets)
        twin.merge(self)
        return twin


#: Whether the histograms are observed: from the first exporter of the
#: process on (:func:`enable`). Counters are always counted.
ENABLED = False

_SOURCES = weakref.WeakSet()
_SOURCES_LOCK = threading.Lock()


def enable():
    """Observe the histograms (send latency, batch sizes) from now on, in
    every transport of the process. Exporters call it; until then a send
    pays no clock reading nor bucket search."""
    global ENABLED
    ENABLED = True


def track(source):
    """Count ``source`` in :func:`collect` while it lives.

    ``source`` has ``backend_name`` (str), ``counters`` (a
    :class:`~notifbus.bus.Counters`) and ``subscriptions()`` (its listeners'
    :class:`~notifbus.bus.Subscription` objects); the notifbus oslo driver
    is one. It is held weakly.
    """
    with _SOURCES_LOCK:
        _SOURCES.add(source)


def untrack(source):
    """Stop counting ``source`` (its transport was cleaned up)."""
    with _SOURCES_LOCK:
        _SOURCES.discard(source)


#: What :func:`collect` returns for one metric: its :class:`Metric` and
#: ``{label values: value}``, values in the order of ``metric.labels``; a
#: value is an ``int`` (counters, gauges) or a :class:`Histogram`.
Family = collections.namedtuple("Family", "metric samples")


def collect():
    """A snapshot of every metric of the live transports, a
    :class:`Family` per entry of :data:`METRICS`, in that order."""
    with _SOURCES_LOCK:
        sources = list(_SOURCES)
    values = {metric.name: {} for metric in METRICS}
    by_field = {metric.field: metric for metric in METRICS if metric.field}
    for source in sources:
        backend = source.backend_name
        for (topic, pool), tally in source.counters.tallies().items():
            # a tally without a pool is a publisher's, with one a listener's
            labels = PUBLISHER_LABELS if pool is None else LISTENER_LABELS
            key = (backend, topic) if pool is None else (backend, topic,
                                                         pool)
            for field, metric in by_field.items():
                if metric.labels == labels:
                    _add(values[metric.name], key, getattr(tally, field))
        lag = values["notifbus_consumer_lag"]
        for subscription in source.subscriptions():
            for topic, records in _topic_lag(subscription).items():
                _add(lag, (backend, topic, subscription.group), records)
    return [Family(metric, values[metric.name]) for metric in METRICS]


def _add(samples, key, value):
    found = samples.get(key)
    if found is None:
        samples[key] = value.copy() if isinstance(value, Histogram) \
            else value
    elif isinstance(value, Histogram):
        found.merge(value)
    else:
        samples[key] = found + value


def _topic_lag(subscription):
    """``{topic: records}`` behind the end, summed over the partitions
    ``subscription`` reads; empty when its backend does not tell."""
    try:
        lag = subscription.lag()
    except Exception:  # noqa: BLE001 - a metric never breaks a listener
        return {}
    per_topic = {}
    for (topic, _partition), records in (lag or {}).items():
        per_topic[topic] = per_topic.get(topic, 0) + max(records, 0)
    return per_topic


def start_exporters(conf, common):
    """Start, once per process, the exporters the configuration asks for:
    the Prometheus endpoint when ``[notifbus] prometheus_port`` is set, the
    oslo.metrics pusher when ``[oslo_messaging_metrics] metrics_enabled``
    is true. Called by each notifbus transport as it is created.

    :raises ConfigError: ``prometheus_port`` is set without the
        ``prometheus`` extra.
    """
    port = common.prometheus_port
    if port:
        enable()
        try:
            from notifbus.metrics import prometheus
        except ImportError as exc:
            raise errors.ConfigError(
                "[notifbus] prometheus_port needs prometheus_client: "
                "pip install 'notifbus[prometheus]', or unset it") from exc
        try:
            prometheus.serve(port, common.prometheus_host)
        except OSError as exc:
            LOG.error("notifbus: cannot serve metrics at %s:%d: %s; give "
                      "each process its own [notifbus] prometheus_port",
                      common.prometheus_host, port, exc)
    group = _oslo_messaging_metrics(conf)
    if group is not None and group.metrics_enabled:
        enable()
        from notifbus.metrics import oslo
        oslo.start(group.metrics_socket_file, group.metrics_process_name,
                   common.metrics_push_interval_s)


def _oslo_messaging_metrics(conf):
    """``conf``'s ``[oslo_messaging_metrics]`` group, registered with
    oslo.messaging's own options if needed; ``None`` for an oslo.messaging
    without them."""
    try:
        from oslo_messaging._metrics import client
    except ImportError:
        return None
    conf.register_opts(client.oslo_messaging_metrics,
                       group="oslo_messaging_metrics")
    return conf.oslo_messaging_metrics
