"""Copy the committed offsets of one Kafka consumer group to another.

Usage::

    python copy_group_offsets.py BOOTSTRAP_SERVERS OLD_GROUP NEW_GROUP

A notifbus listener pool started under a new name then starts where the
old group stopped, not at ``auto_offset_reset``. Kafka changes the offsets
of a group without members only: stop the old group's listeners first,
start the new ones after. Needs confluent-kafka (the ``rdkafka`` extra);
plain-text connections only, add ``security.protocol`` and friends to the
``AdminClient`` configuration for others.
"""

import sys

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient


def copy_offsets(bootstrap_servers, old_group, new_group, timeout=30.0):
    """Commit ``old_group``'s offsets for ``new_group``.

    :returns: the ``TopicPartition`` list committed, with their offsets.
    :raises ValueError: ``old_group`` has no committed offset.
    :raises confluent_kafka.KafkaException: the broker refused, e.g.
        ``new_group`` has members.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    listing = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(old_group)])
    committed = listing[old_group].result(timeout)
    partitions = [TopicPartition(tp.topic, tp.partition, tp.offset)
                  for tp in committed.topic_partitions if tp.offset >= 0]
    if not partitions:
        raise ValueError(f"consumer group {old_group!r} has no committed "
                         f"offset: nothing to copy")
    change = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(new_group, partitions)])
    change[new_group].result(timeout)
    return partitions


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    for tp in copy_offsets(*sys.argv[1:]):
        print(f"{tp.topic} {tp.partition} {tp.offset}")
