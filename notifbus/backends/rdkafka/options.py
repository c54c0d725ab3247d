"""The ``[notifbus_rdkafka]`` options: those of both Kafka backends
(:func:`notifbus.backends.kafka_common.options.shared_opts`) and
librdkafka's own, with the rules that tie them (:data:`RULES`)."""

from typing import List

from oslo_config import cfg

from notifbus.backends.kafka_common import options as kafka_options


def list_opts() -> List[cfg.Opt]:
    """The options of ``[notifbus_rdkafka]``, new objects at each call."""
    return [
        cfg.FloatOpt("producer_linger_ms", default=0.0, min=0.0,
                     help="How long librdkafka waits for more records "
                          "before it sends a batch (its linger.ms). The "
                          "bus batches already: keep it short."),
        cfg.IntOpt("producer_batch_bytes", default=1000000, min=1,
                   help="Largest record batch librdkafka builds per "
                        "partition, in bytes (its batch.size)."),
        cfg.IntOpt("producer_batch_records", default=10000, min=1,
                   help="Most records in one batch librdkafka builds (its "
                        "batch.num.messages)."),
        cfg.IntOpt("message_max_bytes", default=1048576 + 65536, min=1000,
                   max=1000000000,
                   help="Largest request librdkafka sends, hence largest "
                        "record (its message.max.bytes); a larger record "
                        "fails at once as too large. Keep it above "
                        "notifbus's max_message_bytes. At most "
                        "fetch_max_bytes."),
        cfg.IntOpt("message_timeout_ms", default=120000, min=1,
                   help="How long librdkafka keeps retrying a record that "
                        "it sent before it reports the record failed (its "
                        "message.timeout.ms). A send attempt waits at most "
                        "the bus's send_timeout_ms. At least "
                        "request_timeout_ms + producer_linger_ms, as "
                        "Kafka's producers require (delivery.timeout.ms >= "
                        "linger.ms + request.timeout.ms)."),
        # librdkafka's socket.timeout.ms takes 10 to 300000
        *kafka_options.shared_opts(request_timeout_min=10,
                                   request_timeout_max=300000),
        cfg.DictOpt("extra_config", default={}, secret=True,
                    help="Further librdkafka properties, given to every "
                         "client as they are: key:value,key:value. "
                         "Properties that notifbus sets itself are "
                         "refused: use their options."),
    ]


#: Options that constrain each other, checked when a transport is created.
RULES = [
    kafka_options.HEARTBEAT_WITHIN_SESSION,
    kafka_options.Below(
        ("session_timeout_ms",), "max_poll_interval_ms",
        "librdkafka refuses a consumer whose session outlasts its poll "
        "interval", or_equal=True),
    kafka_options.Below(
        ("fetch_max_wait_ms",), "request_timeout_ms",
        "a fetch that the broker holds that long would time out"),
    kafka_options.Below(
        ("request_timeout_ms", "producer_linger_ms"), "message_timeout_ms",
        "a record would expire before the broker's answer to its first "
        "send is due", or_equal=True),
    kafka_options.Below(
        ("message_max_bytes",), "fetch_max_bytes",
        "librdkafka refuses a consumer whose fetch cannot hold the largest "
        "record it may send", or_equal=True),
]
