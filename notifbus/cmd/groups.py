"""``notifbus groups``: consumer groups (listener pools), their members,
committed offsets and lag."""

from notifbus.cmd import brokers, output


def add_parser(commands):
    actions = brokers.add_command(
        commands, "groups", "list consumer groups (listener pools), or "
                            "show one's members, offsets and lag")
    brokers.add_action(actions, "list", "consumer groups with their state "
                       "and members", run_list)
    describe = brokers.add_action(
        actions, "describe", "a group's members and, per partition, its "
                             "committed offset, the end offset and the lag",
        run_describe)
    describe.add_argument("group", help="consumer group: the pool name of "
                          "the listeners, or [notifbus] consumer_group")


def run_list(args):
    with brokers.opened(args) as (inspector, _, _):
        groups = inspector.list_groups(args.timeout)
    if args.json:
        output.as_json(groups)
    else:
        output.table(["GROUP", "STATE", "MEMBERS"],
                     [[g.name, g.state or None, g.members] for g in groups])
    return 0


def run_describe(args):
    with brokers.opened(args) as (inspector, _, _):
        group = inspector.describe_group(args.group, args.timeout)
    if args.json:
        output.as_json(group)
        return 0
    members = ""
    if group.members is not None:
        count = len(group.members)
        members = f", {count} member{'s' if count != 1 else ''}"
    print(f"group {group.name}: state {group.state or '-'}{members}, total "
          f"lag {group.total_lag}")
    if group.members:
        print()
        output.table(["MEMBER", "CLIENT-ID", "HOST", "ASSIGNMENT"],
                     [[m.member_id, m.client_id or None, m.host or None,
                       " ".join(f"{t}:{p}" for t, p in m.assignment)
                       or None] for m in group.members])
    print()
    output.table(
        ["TOPIC", "PARTITION", "COMMITTED", "END-OFFSET", "LAG", "MEMBER"],
        [[p.topic, "*" if p.partition is None else p.partition,
          p.committed, p.end_offset, p.lag, p.member]
         for p in group.positions])
    return 0
