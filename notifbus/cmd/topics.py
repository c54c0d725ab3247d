"""``notifbus topics``: list, describe, create and delete topics (NATS:
streams)."""

import sys

from notifbus import errors
from notifbus.cmd import brokers, output


def add_parser(commands):
    actions = brokers.add_command(
        commands, "topics", "list, describe, create or delete topics")
    brokers.add_action(actions, "list", "topics with their partitions and "
                       "end offsets", run_list)
    describe = brokers.add_action(
        actions, "describe", "a topic's partitions: end offset, leader, "
                             "replicas, in-sync replicas", run_describe)
    describe.add_argument("topic", help="topic, e.g. notifications.info")
    create = brokers.add_action(actions, "create", "create a topic",
                                run_create)
    create.add_argument("topic", help="topic to create")
    create.add_argument(
        "--partitions", type=int, metavar="N",
        help="partitions (default: num_partitions of the configuration)")
    create.add_argument(
        "--replication-factor", type=int, metavar="N",
        help="replicas of each partition (default: the backend's "
             "replication_factor, NATS: replicas); Kafka topics get the "
             "backend's topic_config too")
    delete = brokers.add_action(
        actions, "delete", "delete a topic and its records, after a "
                           "confirmation", run_delete, json=False)
    delete.add_argument("topic", help="topic to delete")
    delete.add_argument("--yes", action="store_true",
                        help="do not ask for confirmation")


def show(topics, args):
    if args.json:
        output.as_json(topics)
        return
    output.table(
        ["TOPIC", "PARTITION", "END-OFFSET", "LEADER", "REPLICAS", "ISR"],
        [[t.name, p.partition, p.end_offset, p.leader,
          ",".join(map(str, p.replicas)) or None,
          ",".join(map(str, p.isr)) or None]
         for t in topics for p in t.partitions])


def run_list(args):
    with brokers.opened(args) as (inspector, _, _):
        topics = inspector.list_topics(args.timeout)
    if args.json:
        output.as_json(topics)
    else:
        output.table(
            ["TOPIC", "PARTITIONS", "REPLICAS", "END-OFFSETS"],
            [[t.name, len(t.partitions), t.replication_factor,
              " ".join(f"{p.partition}:{p.end_offset}"
                       for p in t.partitions)] for t in topics])
    return 0


def run_describe(args):
    with brokers.opened(args) as (inspector, _, _):
        show([inspector.describe_topic(args.topic, args.timeout)], args)
    return 0


def run_create(args):
    if args.partitions is not None and args.partitions < 1:
        raise errors.ConfigError("--partitions must be at least 1")
    if args.replication_factor is not None and args.replication_factor < 1:
        raise errors.ConfigError("--replication-factor must be at least 1")
    with brokers.opened(args) as (inspector, _, resolved):
        partitions = args.partitions or resolved.common.num_partitions
        show([inspector.create_topic(args.topic, partitions,
                                     args.replication_factor,
                                     args.timeout)], args)
    return 0


def run_delete(args):
    with brokers.opened(args) as (inspector, _, _):
        topic = inspector.describe_topic(args.topic, args.timeout)
        if not args.yes:
            records = sum(topic.end_offsets.values())
            if not sys.stdin.isatty():
                raise errors.ConfigError(
                    f"deleting topic {args.topic!r} needs a confirmation: "
                    f"run it on a terminal, or give --yes")
            answer = input(f"delete topic {args.topic!r} and its records "
                         f"(end offsets sum {records})? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                print(f"{args.prog}: topic {args.topic!r} kept",
                      file=sys.stderr)
                return 1
        inspector.delete_topic(args.topic, args.timeout)
    print(f"deleted topic {args.topic!r}")
    return 0
