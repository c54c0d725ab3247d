"""Every oslo.config option of notifbus, and ``list_opts()`` for the
generator and the docs.

``[notifbus]`` holds what is common to all backends (delivery, batching,
retry, partitioning, consumers); each backend adds a ``[notifbus_<name>]``
group from its ``list_opts()``. Any option of either group can be
overridden per transport in the URL query:
``notifbus+kafka://h1:9092/?linger_ms=5&acks=1``.
"""

import copy

from oslo_config import cfg

from notifbus import backends
from notifbus.policy import partitioning

GROUP = "notifbus"

notifbus_opts = [
    cfg.StrOpt("delivery", default="confirmed",
               choices=["confirmed", "buffered"],
               help="confirmed: a send returns once the broker acknowledged "
                    "the notification. buffered: a send returns once it is "
                    "in a bounded in-memory buffer; a background sender "
                    "delivers it, retrying per buffered_retry, and spools "
                    "what it cannot deliver to spool_dir. A process killed "
                    "with SIGKILL loses what was in the buffer."),
    cfg.IntOpt("max_buffer_records", default=10000, min=1,
               help="buffered mode: most notifications held in memory. A "
                    "full buffer makes senders wait per their retry "
                    "setting (0 fails at once)."),
    cfg.IntOpt("max_buffer_bytes", default=16777216, min=1,
               help="buffered mode: most bytes of notifications held in "
                    "memory."),
    cfg.IntOpt("buffered_retry", default=-1, min=-1,
               help="buffered mode: retries of the background sender for a "
                    "notification before it is spooled; -1 retries until "
                    "the transport is cleaned up."),
    cfg.StrOpt("spool_dir",
               help="buffered mode: directory of the spool files that "
                    "keep undelivered notifications; they are re-sent at "
                    "the next start or by 'notifbus spool flush'. Default: "
                    "notifbus-spool in the system's temporary directory; "
                    "set a persistent directory in production."),
    cfg.IntOpt("max_batch_records", default=500, min=1,
               help="Most records sent to the broker in one batch. "
                    "Concurrent senders share a batch (group commit)."),
    cfg.IntOpt("max_batch_bytes", default=1048576, min=1,
               help="Most bytes of records sent in one batch."),
    cfg.FloatOpt("linger_ms", default=0.0, min=0.0,
                 help="How long the sender leading a batch waits for more "
                      "records before sending it, in milliseconds. 0 sends "
                      "at once: batches still form while a batch is in "
                      "flight."),
    cfg.IntOpt("max_message_bytes", default=1048576, min=1,
               help="Largest notification accepted, encoded, in bytes. A "
                    "larger one fails at once with a clear error."),
    cfg.IntOpt("retry_backoff_ms", default=200, min=0,
               help="Wait before the first retry of a failed send, or of "
                    "a listener's failed attempt to join its group, in "
                    "milliseconds; it doubles at each retry."),
    cfg.IntOpt("retry_backoff_max_ms", default=5000, min=0,
               help="Longest wait between two retries (of a send, or of "
                    "a listener's attempt to join), in milliseconds."),
    cfg.IntOpt("send_timeout_ms", default=10000, min=1,
               help="How long one send attempt waits for the broker's "
                    "acknowledgement before it counts as failed, in "
                    "milliseconds. The notifier's retry setting decides "
                    "how many attempts are made."),
    cfg.StrOpt("partitioner", default="round_robin",
               choices=partitioning.NAMES,
               help="How a partition is chosen for each notification: "
                    "round_robin spreads them over all partitions so the "
                    "listeners of a pool share the load; key_hash hashes "
                    "the publisher id as Kafka's default partitioner does, "
                    "keeping each publisher's notifications in order; "
                    "sticky fills one partition per batch."),
    cfg.IntOpt("num_partitions", default=2, min=1,
               help="Partitions of a topic that notifbus creates. Each "
                    "listener of a pool reads whole partitions, so this is "
                    "how many listeners of a pool can share a topic's load: "
                    "set it to at least the listeners of the pool "
                    "(workers x hosts); a listener left without a partition "
                    "of a topic logs a warning. "
                    "Order is kept within a partition: a listener reading "
                    "one partition sees notifications in the order they "
                    "were sent, one reading several sees them interleaved, "
                    "so equal to the pool's listeners keeps each listener's "
                    "order; use the key_hash partitioner to keep each "
                    "publisher's order whatever the count."),
    cfg.StrOpt("consumer_group", default="notifbus",
               help="Consumer group of listeners started without a pool. "
                    "Listeners in a pool use the pool name."),
    cfg.BoolOpt("exchange_in_topic", default=False,
                help="Prefix topic names with the target's exchange (or "
                     "control_exchange), so services with different "
                     "exchanges use different topics. Off by default, "
                     "which names topics as oslo's own Kafka driver does."),
    cfg.BoolOpt("dead_letter", default=True,
                help="Write records a listener cannot read as notifications "
                     "(garbage, not an oslo message, empty, over "
                     "max_message_bytes) to a dead-letter topic, with "
                     "headers naming their origin and the error. Off: they "
                     "are only logged and counted."),
    cfg.StrOpt("dead_letter_topic", default="{topic}.dead",
               help="Dead-letter topic; {topic} is the topic the record "
                    "was read from."),
    cfg.IntOpt("commit_interval_ms", default=200, min=0,
               help="Least time between two offset commits of a listener, "
                    "in milliseconds. Only offsets of dispatched "
                    "notifications are committed, whatever the interval; a "
                    "longer one means fewer commits and, after a crash, "
                    "more notifications delivered again. 0 commits before "
                    "every poll."),
    cfg.IntOpt("read_ahead_records", default=500, min=1,
               help="Most records a listener reads from the broker ahead "
                    "of its dispatcher, in one poll. They are committed "
                    "only once dispatched; after a rewind or a rebalance, "
                    "those not yet dispatched are read again."),
    cfg.IntOpt("max_redeliveries", default=5, min=0,
               help="How many times a listener delivers again a "
                    "notification its endpoint requeued (returned REQUEUE "
                    "or raised) before it sends it to the dead-letter "
                    "topic (or, with dead_letter off, logs and skips it). "
                    "Only the requeued notification comes again: the "
                    "notifications after it are dispatched and committed "
                    "meanwhile, and the commit stays below it until it is "
                    "resolved. 0 dead-letters at the first requeue."),
    cfg.IntOpt("requeue_backoff_ms", default=1000, min=0,
               help="Wait before a requeued notification is delivered "
                    "again, in milliseconds; it doubles at each "
                    "redelivery, up to requeue_backoff_max_ms."),
    cfg.IntOpt("requeue_backoff_max_ms", default=30000, min=0,
               help="Longest wait before a redelivery, in milliseconds."),
    cfg.IntOpt("poll_timeout_ms", default=200, min=1,
               help="Longest single wait of a listener for records, in "
                    "milliseconds; offsets of processed notifications are "
                    "committed between waits."),
    cfg.IntOpt("assign_timeout_ms", default=30000, min=0,
               help="How long starting a listener waits for its consumer "
                    "group to assign it partitions, in milliseconds, so "
                    "that notifications sent once the listener has started "
                    "reach it."),
    cfg.IntOpt("listener_start_timeout_ms", default=-1, min=-1,
               help="How long starting a notification listener keeps "
                    "trying to reach the broker before it fails with "
                    "ListenerStartError, in milliseconds. -1 never fails "
                    "for a broker that does not answer: the start returns "
                    "after the first failed attempt, and the listener "
                    "goes on trying in the background (waits from "
                    "retry_backoff_ms doubling up to retry_backoff_max_ms, "
                    "one log line when the broker does not answer, one "
                    "when it answers again) and reads what was sent "
                    "meanwhile once it has joined its group. 0 fails at "
                    "the first failed attempt. A failure no retry cures (a "
                    "refused login, a certificate that does not verify) "
                    "fails the start at once whatever the setting."),
    cfg.FloatOpt("stats_log_interval_s", default=60.0, min=0.0,
                 help="How often the counters (sent, acked, failed, "
                      "retried, delivered, committed, invalid, "
                      "dead_lettered, spooled, redelivered) are logged at "
                      "debug level."),
    cfg.IntOpt("close_timeout_ms", default=5000, min=0,
               help="Longest wait to close connections on cleanup, in "
                    "milliseconds, even when the broker is gone."),
    cfg.PortOpt("prometheus_port",
                help="Serve notifbus's metrics in Prometheus' format at "
                     "http://<prometheus_host>:<port>/metrics, from the "
                     "first notifbus transport of the process on (needs "
                     "the prometheus extra). Unset (the default): not "
                     "served; a service with a registry of its own calls "
                     "notifbus.metrics.prometheus.register() instead. "
                     "Each process needs a port of its own."),
    cfg.StrOpt("prometheus_host", default="0.0.0.0",
               help="Address prometheus_port listens on."),
    cfg.FloatOpt("metrics_push_interval_s", default=10.0, min=0.1,
                 help="How often notifbus sends what changed in its "
                      "metrics to oslo.metrics, in seconds, when "
                      "[oslo_messaging_metrics] metrics_enabled is true."),
]


def register_opts(conf):
    """Register ``[notifbus]`` and every installed backend's group."""
    conf.register_opts(notifbus_opts, group=GROUP)
    for name, opts in _backend_opts():
        conf.register_opts(opts, group=backend_group(name))


def backend_group(name):
    """Option group of backend ``name``: ``notifbus_<name>``."""
    return f"{GROUP}_{name}"


def _backend_opts(names=None):
    for name in names or backends.names():
        try:
            backend = backends.load(name)
        except Exception:  # noqa: BLE001 - a missing extra has no options
            continue
        yield name, backend.list_opts()


#: notifbus's own backends: :func:`list_opts` lists their groups only, so
#: that the ``notifbus`` namespace of oslo-config-generator (and the
#: committed sample) do not depend on the plugins installed; a plugin
#: declares its own ``oslo.config.opts`` entry point for its group.
BUILTIN_BACKENDS = ("kafka", "memory", "nats", "rdkafka")

#: what each value of an option with choices means, by option name (the
#: same name means the same in every group); the generator prints them
#: under "Possible values".
CHOICES = {
    "delivery": {
        "confirmed": "a send returns once the broker acknowledged the "
                     "notification",
        "buffered": "a send returns once the notification is in the "
                    "in-memory buffer; a background sender delivers it "
                    "or spools it to spool_dir",
    },
    "partitioner": {
        "round_robin": "spread notifications over all partitions",
        "key_hash": "hash the publisher id as Kafka's default partitioner "
                    "does: each publisher's notifications stay in order",
        "sticky": "fill one partition per batch",
    },
    "acks": {
        "all": "every in-sync replica stored the record",
        "1": "the partition leader stored the record",
    },
    "compression_type": {
        "none": "no compression",
        "gzip": "gzip (zlib)",
        "snappy": "Snappy",
        "lz4": "LZ4 frames",
        "zstd": "Zstandard",
    },
    "auto_offset_reset": {
        "earliest": "a new group reads a topic from its first record",
        "latest": "a new group reads what is sent after it joined",
    },
    "security_protocol": {
        "PLAINTEXT": "no TLS, no login",
        "SSL": "TLS, authenticated by certificate if one is set",
        "SASL_PLAINTEXT": "SASL login without TLS",
        "SASL_SSL": "SASL login over TLS",
    },
    "sasl_mechanism": {
        "PLAIN": "user and password, in clear (use with SASL_SSL)",
        "SCRAM-SHA-256": "salted challenge, SHA-256",
        "SCRAM-SHA-512": "salted challenge, SHA-512",
    },
    "broker_quirks": {
        "none": "Apache Kafka and brokers that behave as it does",
        "tansu": "Tansu 0.6, the embedded broker of notifbus demo",
    },
    "retention": {
        "limits": "keep records until max_age_s or max_bytes",
        "interest": "drop a record once every durable consumer "
                    "acknowledged it",
    },
    "storage": {
        "file": "on disk",
        "memory": "in the server's memory, lost when it stops",
    },
}


def _described(option_list):
    """Copies of ``option_list`` whose choices carry their description
    from :data:`CHOICES`."""
    found = copy.deepcopy(option_list)
    for opt in found:
        choices = getattr(opt.type, "choices", None)
        if not choices:
            continue
        described = CHOICES.get(opt.dest, {})
        for value in list(choices):
            if choices[value] is None and value in described:
                choices[value] = described[value]
    return found


def list_opts():
    """Options for oslo-config-generator (``oslo.config.opts`` entry
    ``notifbus``): ``[notifbus]`` and the groups of the built-in backends
    whose client is installed (:data:`BUILTIN_BACKENDS`), each choice
    described."""
    groups = [(GROUP, _described(notifbus_opts))]
    for name, opts in _backend_opts(BUILTIN_BACKENDS):
        groups.append((backend_group(name), _described(opts)))
    return groups
