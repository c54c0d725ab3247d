"""What the Kafka backends log the same way."""


def partition_list(partitions):
    """``t[0,1] u[0]`` for ``{("t", 0), ("t", 1), ("u", 0)}``; ``none``
    for no partition."""
    by_topic = {}
    for topic, partition in sorted(partitions):
        by_topic.setdefault(topic, []).append(str(partition))
    return " ".join(f"{topic}[{','.join(numbers)}]"
                    for topic, numbers in by_topic.items()) or "none"
