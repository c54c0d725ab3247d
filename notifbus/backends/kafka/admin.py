"""Administration of Kafka through kafka-python's ``KafkaAdminClient``
(the ``kafka`` backend).

End offsets come from the backend's own reader (``end_offsets``), which
knows the broker's quirks; committed offsets from the group coordinator
(OffsetFetch).
"""

import time

from kafka import errors as kerrors
from kafka.admin import NewTopic

from notifbus import admin as base
from notifbus import errors
from notifbus.backends.kafka_common import options as kafka_options


class KafkaAdmin(base.Admin):
    """:class:`notifbus.admin.Admin` for the ``kafka`` backend."""

    def _client(self):
        # the backend's admin client: its connection settings, its
        # diagnosis of TLS and SASL failures, closed with the backend
        return self.backend._get_admin()

    def _where(self):
        return ",".join(self.backend.bootstrap_servers)

    def _retrying(self, call, timeout):
        """``call()``, again while it fails with a retriable error (no
        group coordinator yet on a new cluster, a leader election) and
        ``timeout`` seconds have not passed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return call()
            except kerrors.KafkaError as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def _failed(self, what, exc):
        return errors.DeliveryError(
            f"{what} at {self._where()} failed: {exc}",
            retriable=getattr(exc, "retriable", True))

    def cluster(self, timeout):
        try:
            found = self._client().describe_cluster()
        except kerrors.KafkaError as exc:
            raise self._failed("reading the cluster metadata", exc) from exc
        brokers = len(found.get("brokers") or [])
        return (f"{brokers} broker{'s' if brokers != 1 else ''}, cluster "
                f"{found.get('cluster_id')}, controller "
                f"{found.get('controller_id')}")

    def _describe(self, names):
        try:
            return self._client().describe_topics(names)
        except kerrors.KafkaError as exc:
            raise self._failed("reading topic metadata", exc) from exc

    def _topic(self, found, timeout):
        name = found["name"]
        ends = self.backend.end_offsets(name, timeout)
        partitions = [
            base.PartitionInfo(
                partition=p["partition_index"],
                end_offset=ends.get(p["partition_index"], 0),
                leader=p.get("leader_id"),
                replicas=list(p.get("replica_nodes") or []),
                isr=list(p.get("isr_nodes") or []))
            for p in sorted(found["partitions"],
                            key=lambda p: p["partition_index"])]
        factor = max((len(p.replicas) for p in partitions), default=None)
        return base.TopicInfo(name=name, partitions=partitions,
                              replication_factor=factor)

    def list_topics(self, timeout):
        found = [t for t in self._describe(None)
                 if not t.get("is_internal") and not t["error_code"]]
        return [self._topic(t, timeout)
                for t in sorted(found, key=lambda t: t["name"])]

    def describe_topic(self, topic, timeout):
        try:
            found = self._describe([topic])
        except errors.DeliveryError as exc:
            if isinstance(exc.__cause__,
                          kerrors.UnknownTopicOrPartitionError):
                raise base.not_found("topic", topic, self._where()) from exc
            raise
        if not found or found[0]["error_code"]:
            raise base.not_found("topic", topic, self._where())
        return self._topic(found[0], timeout)

    def create_topic(self, topic, partitions, replication_factor, timeout):
        # as the backend creates topics: its replication_factor and
        # topic_config
        factor, configs = kafka_options.new_topic(self.backend.opts)
        new = NewTopic(topic, partitions, replication_factor or factor,
                       topic_configs=configs)
        try:
            self._client().create_topics(
                [new], timeout_ms=int(timeout * 1000),
                wait_for_metadata=True)
        except kerrors.TopicAlreadyExistsError as exc:
            raise errors.NotifbusError(
                f"topic {topic!r} exists already at {self._where()}") \
                from exc
        except kerrors.KafkaError as exc:
            raise self._failed(f"creating topic {topic!r}", exc) from exc
        return self.describe_topic(topic, timeout)

    def delete_topic(self, topic, timeout):
        try:
            self._client().delete_topics([topic],
                                         timeout_ms=int(timeout * 1000))
        except kerrors.UnknownTopicOrPartitionError as exc:
            raise base.not_found("topic", topic, self._where()) from exc
        except kerrors.KafkaError as exc:
            raise self._failed(f"deleting topic {topic!r}", exc) from exc

    def list_groups(self, timeout):
        client = self._client()
        try:
            names = sorted({g["group_id"] for g in self._retrying(
                client.list_groups, timeout)})
            found = self._retrying(lambda: client.describe_groups(names),
                                   timeout) if names else {}
        except kerrors.KafkaError as exc:
            raise self._failed("listing consumer groups", exc) from exc
        return [base.GroupSummary(
            name=name, state=found[name].get("group_state") or "",
            members=len(found[name].get("members") or []))
            for name in names]

    def describe_group(self, group, timeout):
        client = self._client()
        try:
            described = self._retrying(
                lambda: _group_described(client, group), timeout)
            committed = self._retrying(
                lambda: client.list_group_offsets({group: None}),
                timeout)[group]
        except kerrors.GroupIdNotFoundError as exc:
            raise base.not_found("consumer group", group,
                                 self._where()) from exc
        except kerrors.KafkaError as exc:
            raise self._failed(f"describing group {group!r}", exc) from exc
        state = described.get("group_state") or ""
        if state == "Dead" and not committed:
            raise base.not_found("consumer group", group, self._where())
        members = [_member(m) for m in described.get("members") or []]
        owner = {tp: m.member_id for m in members for tp in m.assignment}
        offsets = {(tp.topic, tp.partition): meta.offset
                   for tp, meta in committed.items()}
        positions = base.group_positions(
            offsets, owner,
            lambda topic: self.backend.end_offsets(topic, timeout))
        return base.GroupInfo(name=group, state=state, members=members,
                              positions=positions)


class _GroupError(kerrors.KafkaError):
    """An error DescribeGroups gave for the group, as kafka-python's
    ``describe_groups`` reports it (a string): retriable but an
    authorization failure."""

    def __init__(self, message):
        super().__init__(message)
        self.retriable = "Authorization" not in message

    def __str__(self):
        return self.args[0]


def _group_described(client, group):
    described = client.describe_groups([group])[group]
    error = described.get("error")
    if error and "GroupIdNotFound" in error:
        raise kerrors.GroupIdNotFoundError(error)
    if error:
        raise _GroupError(error)
    return described


def _member(found):
    assigned = found.get("member_assignment")
    pairs = []
    for topic, partitions in _assigned_partitions(assigned):
        pairs += [(topic, p) for p in partitions]
    return base.Member(member_id=found["member_id"],
                       client_id=found.get("client_id") or "",
                       host=found.get("client_host") or "",
                       assignment=sorted(pairs))


def _assigned_partitions(assigned):
    """``[(topic, [partition, ...]), ...]`` of a decoded assignment."""
    if not assigned:
        return []
    if hasattr(assigned, "assignment"):  # ConsumerProtocolAssignment
        return list(assigned.assignment)
    if isinstance(assigned, dict):
        return [(t["topic"], t["partitions"])
                for t in assigned.get("assigned_partitions") or []]
    return []


#: the class :func:`notifbus.admin.for_backend` loads
ADMIN = KafkaAdmin
