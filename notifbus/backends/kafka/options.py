"""The ``[notifbus_kafka]`` options: those of both Kafka backends
(:func:`notifbus.backends.kafka_common.options.shared_opts`) and
kafka-python's own, with the rules that tie them (:data:`RULES`)."""

from typing import List

import kafka
from oslo_config import cfg

from notifbus.backends.kafka_common import options as kafka_options


def list_opts() -> List[cfg.Opt]:
    """The options of ``[notifbus_kafka]``, new objects at each call."""
    return [
        cfg.IntOpt("producer_batch_bytes", default=262144, min=1,
                   help="Largest record batch the client builds per "
                        "partition, in bytes."),
        cfg.BoolOpt("batch_writer", default=True,
                    help="Encode each batch of the bus as Kafka record "
                         "batches of notifbus's own, once per batch, and "
                         "send one produce request per broker. False hands "
                         "the records one by one to kafka-python's "
                         "producer, which batches them again."),
        cfg.IntOpt("delivery_timeout_ms", default=120000, min=1,
                   help="How long the client keeps retrying a record "
                        "inside one send attempt before reporting it "
                        "failed. At least request_timeout_ms, as Kafka's "
                        "producers require (delivery.timeout.ms >= "
                        "linger.ms + request.timeout.ms; this client "
                        "lingers 0 ms, the bus batches)."),
        *kafka_options.shared_opts(),
    ]


#: Options that constrain each other, checked when a transport is created.
RULES = [
    kafka_options.HEARTBEAT_WITHIN_SESSION,
    kafka_options.Below(
        ("fetch_max_wait_ms",), "request_timeout_ms",
        "a fetch that the broker holds that long would time out, and "
        "kafka-python refuses such a consumer"),
    kafka_options.Below(
        ("request_timeout_ms",), "delivery_timeout_ms",
        "a record would expire before the broker's answer to its first "
        "send is due", or_equal=True),
    kafka_options.Below(
        ("request_timeout_ms",), kafka_options.Limit(
            "kafka-python's connections_max_idle_ms",
            kafka.KafkaConsumer.DEFAULT_CONFIG["connections_max_idle_ms"]),
        "kafka-python refuses a request timeout that outlasts an idle "
        "connection"),
]
