"""The ``[notifbus_memory]`` options: only what is the memory backend's
own. It reads ``num_partitions`` and ``max_message_bytes`` from
``[notifbus]`` (:attr:`MemoryBackend.common_options
<notifbus.backends.memory.MemoryBackend.common_options>`)."""

from typing import List

from oslo_config import cfg

OFFSET_RESETS = ("earliest", "latest")


def list_opts() -> List[cfg.Opt]:
    """The options of ``[notifbus_memory]``, new objects at each call."""
    return [
        cfg.StrOpt("auto_offset_reset", default="earliest",
                   choices=OFFSET_RESETS,
                   help="Where a consumer group without a committed "
                        "offset starts reading a partition: its first "
                        "record (earliest) or its end when the partition "
                        "is assigned (latest)."),
    ]
