"""Administration of Kafka through confluent-kafka's ``AdminClient``
(the ``rdkafka`` backend): ``list_topics``, ``describe_cluster``,
``create_topics``/``delete_topics``, ``list_consumer_groups``,
``describe_consumer_groups`` and ``list_consumer_group_offsets``.

End offsets come from the backend's own reader (``end_offsets``), which
knows the broker's quirks.
"""

import time

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
)
from confluent_kafka.admin import NewTopic

from notifbus import admin as base
from notifbus import errors
from notifbus.backends.kafka_common import options as kafka_options
from notifbus.backends.rdkafka.failures import code, reason
from notifbus.backends.threads import wait_future


def _state(state):
    """Kafka's name of a group state: ``PreparingRebalance`` from
    ``ConsumerGroupState.PREPARING_REBALANCE``."""
    name = getattr(state, "name", str(state))
    return "".join(word.capitalize() for word in name.split("_"))


class RdkafkaAdmin(base.Admin):
    """:class:`notifbus.admin.Admin` for the ``rdkafka`` backend."""

    def _client(self):
        # the backend's admin client: its properties (SASL, TLS, extra
        # ones) and error callbacks, closed with the backend
        return self.backend._get_admin()

    def _where(self):
        return self.backend.bootstrap_servers

    def _wait(self, future, timeout, what):
        try:
            return wait_future(future, timeout + 1.0)
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"{what} at {self._where()} failed: {reason(exc)}") from exc
        except TimeoutError as exc:
            raise errors.DeliveryError(
                f"{what} at {self._where()}: no answer within "
                f"{timeout:.1f} s; check the transport URL and that the "
                f"brokers run") from exc

    def _metadata(self, timeout):
        # all topics: asking for one may create it on a broker with
        # auto.create.topics.enable
        try:
            return self._client().list_topics(timeout=timeout)
        except KafkaException as exc:
            raise errors.DeliveryError(
                f"reading the metadata of {self._where()} failed: "
                f"{reason(exc)}; check the transport URL and that the "
                f"brokers run") from exc

    def cluster(self, timeout):
        found = self._wait(self._client().describe_cluster(
            request_timeout=timeout), timeout, "reading the cluster metadata")
        brokers = len(found.nodes or [])
        controller = getattr(found.controller, "id", None)
        return (f"{brokers} broker{'s' if brokers != 1 else ''}, cluster "
                f"{found.cluster_id}, controller {controller}")

    def _topic(self, found, timeout):
        ends = self.backend.end_offsets(found.topic, timeout)
        partitions = [
            base.PartitionInfo(partition=p.id,
                               end_offset=ends.get(p.id, 0),
                               leader=p.leader, replicas=list(p.replicas),
                               isr=list(p.isrs))
            for p in sorted(found.partitions.values(), key=lambda p: p.id)]
        factor = max((len(p.replicas) for p in partitions), default=None)
        return base.TopicInfo(name=found.topic, partitions=partitions,
                              replication_factor=factor)

    def list_topics(self, timeout):
        topics = self._metadata(timeout).topics
        return [self._topic(topics[name], timeout)
                for name in sorted(topics)
                if not name.startswith("__") and topics[name].error is None]

    def describe_topic(self, topic, timeout):
        found = self._metadata(timeout).topics.get(topic)
        if found is None or found.error is not None:
            raise base.not_found("topic", topic, self._where())
        return self._topic(found, timeout)

    def create_topic(self, topic, partitions, replication_factor, timeout):
        # as the backend creates topics: its replication_factor and
        # topic_config
        factor, configs = kafka_options.new_topic(self.backend.opts)
        new = NewTopic(topic, num_partitions=partitions,
                       replication_factor=replication_factor or factor,
                       config=configs)
        future = self._client().create_topics(
            [new], request_timeout=timeout, operation_timeout=timeout)[topic]
        try:
            wait_future(future, timeout + 1.0)
        except KafkaException as exc:
            if code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                raise errors.NotifbusError(
                    f"topic {topic!r} exists already at {self._where()}") \
                    from exc
            raise errors.DeliveryError(
                f"creating topic {topic!r} at {self._where()} failed: "
                f"{reason(exc)}") from exc
        self.backend.ensure_topic(topic, new.num_partitions, timeout)
        # the partitions of a new topic may have no leader for a moment
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.describe_topic(topic, timeout)
            except errors.DeliveryError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def delete_topic(self, topic, timeout):
        future = self._client().delete_topics(
            [topic], request_timeout=timeout, operation_timeout=timeout)[topic]
        try:
            wait_future(future, timeout + 1.0)
        except KafkaException as exc:
            if code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise base.not_found("topic", topic, self._where()) from exc
            raise errors.DeliveryError(
                f"deleting topic {topic!r} at {self._where()} failed: "
                f"{reason(exc)}") from exc

    def list_groups(self, timeout):
        client = self._client()
        listed = self._wait(client.list_consumer_groups(
            request_timeout=timeout), timeout, "listing consumer groups")
        names = sorted({g.group_id for g in listed.valid})
        if not names:
            return []
        futures = client.describe_consumer_groups(names,
                                                  request_timeout=timeout)
        summaries = []
        for name in names:
            found = self._wait(futures[name], timeout,
                               f"describing group {name!r}")
            summaries.append(base.GroupSummary(
                name=name, state=_state(found.state),
                members=len(found.members)))
        return summaries

    def describe_group(self, group, timeout):
        client = self._client()
        try:
            described = wait_future(client.describe_consumer_groups(
                [group], request_timeout=timeout)[group], timeout + 1.0)
        except KafkaException as exc:
            if code(exc) == KafkaError.GROUP_ID_NOT_FOUND:
                raise base.not_found("consumer group", group,
                                     self._where()) from exc
            raise errors.DeliveryError(
                f"describing group {group!r} at {self._where()} failed: "
                f"{reason(exc)}") from exc
        listed = self._wait(client.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)],
            request_timeout=timeout)[group], timeout,
            f"reading the committed offsets of group {group!r}")
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in listed.topic_partitions or []}
        state = _state(described.state)
        if state == "Dead" and not committed:
            raise base.not_found("consumer group", group, self._where())
        members = [base.Member(
            member_id=m.member_id, client_id=m.client_id or "",
            host=m.host or "",
            assignment=sorted((tp.topic, tp.partition)
                              for tp in m.assignment.topic_partitions))
            for m in described.members]
        owner = {tp: m.member_id for m in members for tp in m.assignment}
        positions = base.group_positions(
            committed, owner,
            lambda topic: self.backend.end_offsets(topic, timeout))
        return base.GroupInfo(name=group, state=state, members=members,
                              positions=positions)


#: the class :func:`notifbus.admin.for_backend` loads
ADMIN = RdkafkaAdmin
