"""Administration of NATS JetStream through nats-py's JetStream manager
(``nc.jsm()``), for the ``nats`` backend.

How Kafka's terms map (see :mod:`notifbus.backends.nats.backend`):

- a topic is the stream ``<stream_prefix>_<topic>`` (dots made
  underscores); its partitions are the stream's subjects
  ``<stream_prefix>.<topic>.<n>``. Only streams of the backend's
  ``stream_prefix`` whose subjects are notifbus's are listed;
- offsets are stream sequences, shared by the partitions of a topic: a
  partition's end offset is the sequence of its last record plus one;
- a consumer group (listener pool) is one durable consumer per stream,
  named after the group. JetStream keeps one position per durable, not
  per partition, so a group's position is given per topic (partition
  ``None``): ``committed`` is the durable's acknowledgement floor plus
  one (every record below it is acknowledged), ``lag`` is
  ``num_pending + num_ack_pending``: the records not yet delivered to the
  group plus those delivered and not yet acknowledged (committed);
- JetStream does not name the clients pulling from a durable: a group has
  no members list; its state is ``Active`` while a listener waits for
  records (a pending pull request, ``num_waiting``), else ``Idle``.
"""

from nats.js import errors as jerrors

from notifbus import admin as base
from notifbus import errors
from notifbus.backends.nats import internals


class NatsAdmin(base.Admin):
    """:class:`notifbus.admin.Admin` for the ``nats`` backend."""

    def _where(self):
        return self.backend.describe()

    def _run(self, coro, timeout, what):
        # the backend's connection and event loop thread
        return self.backend._call(coro, timeout, what)

    async def _jsm(self):
        return (await self.backend._client()).jsm()

    def _topic_of(self, info):
        """notifbus's topic of a stream, or ``None`` for another stream."""
        subjects = info.config.subjects or []
        prefix = self.backend.opts.stream_prefix + "."
        if not subjects or not subjects[0].startswith(prefix):
            return None
        topic = subjects[0][len(prefix):].rpartition(".")[0]
        if (not topic or self.backend.stream_name(topic) != info.config.name
                or self.backend._partitions_of(topic, subjects) is None):
            return None
        return topic

    async def _streams(self):
        """``{topic: StreamInfo}`` of notifbus's streams of the prefix."""
        nc = await self.backend._client()
        jsm = nc.jsm()
        found = {}
        for name in await self.backend._stream_names(nc):
            try:
                info = await jsm.stream_info(name)
            except jerrors.NotFoundError:
                continue  # deleted meanwhile
            topic = self._topic_of(info)
            if topic is not None:
                found[topic] = info
        return found

    async def _cluster(self):
        nc = await self.backend._client()
        account = await nc.jsm().account_info()
        server = internals.server_info(nc)
        return (f"nats-server {server.get('version', '?')}, JetStream "
                f"with {account.streams} streams")

    def cluster(self, timeout):
        return self._run(self._cluster(), timeout, "JetStream account info")

    def _topic(self, topic, info, timeout):
        ends = self.backend.end_offsets(topic, timeout)
        return base.TopicInfo(
            name=topic, native=info.config.name,
            replication_factor=info.config.num_replicas,
            partitions=[base.PartitionInfo(partition=p, end_offset=end)
                        for p, end in sorted(ends.items())])

    def list_topics(self, timeout):
        streams = self._run(self._streams(), timeout, "list streams")
        return [self._topic(topic, streams[topic], timeout)
                for topic in sorted(streams)]

    async def _stream_info(self, topic):
        jsm = await self._jsm()
        try:
            info = await jsm.stream_info(self.backend.stream_name(topic))
        except jerrors.NotFoundError:
            return None
        return info if self._topic_of(info) == topic else None

    def describe_topic(self, topic, timeout):
        info = self._run(self._stream_info(topic), timeout,
                         f"stream of topic {topic!r}")
        if info is None:
            raise base.not_found(
                "topic", topic, f"{self._where()} (no stream "
                f"{self.backend.stream_name(topic)!r})")
        return self._topic(topic, info, timeout)

    async def _create(self, topic, partitions, replicas):
        jsm = await self._jsm()
        config = self.backend._stream_config(topic, partitions)
        if replicas:
            config.num_replicas = replicas
        try:
            await jsm.add_stream(config)
        except jerrors.BadRequestError as exc:
            if "already in use" in (exc.description or ""):
                return False
            raise
        return True

    def create_topic(self, topic, partitions, replication_factor, timeout):
        if self._run(self._stream_info(topic), timeout,
                     f"stream of topic {topic!r}") is not None:
            raise errors.NotifbusError(
                f"topic {topic!r} exists already at {self._where()}")
        try:
            created = self._run(
                self._create(topic, partitions, replication_factor),
                timeout, f"create stream for topic {topic!r}")
        except errors.DeliveryError as exc:
            raise errors.DeliveryError(
                f"creating topic {topic!r} at {self._where()} failed: "
                f"{exc.__cause__ or exc}") from exc
        if not created:
            raise errors.NotifbusError(
                f"topic {topic!r} exists already at {self._where()}")
        return self.describe_topic(topic, timeout)

    async def _delete(self, topic):
        if await self._stream_info(topic) is None:
            return False
        jsm = await self._jsm()
        try:
            await jsm.delete_stream(self.backend.stream_name(topic))
        except jerrors.NotFoundError:
            return False
        return True

    def delete_topic(self, topic, timeout):
        if not self._run(self._delete(topic), timeout,
                         f"delete stream of topic {topic!r}"):
            raise base.not_found("topic", topic, self._where())

    async def _durables(self):
        """``[(topic, StreamInfo, ConsumerInfo)]`` of every durable
        consumer of notifbus's streams."""
        jsm = await self._jsm()
        found = []
        for topic, stream in sorted((await self._streams()).items()):
            for info in await jsm.consumers_info(stream.config.name):
                if info.config.durable_name:
                    found.append((topic, stream, info))
        return found

    def _group_of(self, info):
        described = info.config.description or ""
        if described.startswith(GROUP_DESCRIPTION):
            return described[len(GROUP_DESCRIPTION):]
        return info.config.durable_name

    def list_groups(self, timeout):
        durables = self._run(self._durables(), timeout, "list consumers")
        groups = {}
        for _, _, info in durables:
            name = self._group_of(info)
            active = groups.get(name, False) or bool(info.num_waiting)
            groups[name] = active
        return [base.GroupSummary(name=name,
                                  state="Active" if active else "Idle")
                for name, active in sorted(groups.items())]

    def describe_group(self, group, timeout):
        durable = self.backend.durable_name(group)
        durables = [(topic, stream, info) for topic, stream, info in
                    self._run(self._durables(), timeout, "list consumers")
                    if info.config.durable_name == durable]
        if not durables:
            raise base.not_found("consumer group", group,
                                 f"{self._where()} (no durable consumer "
                                 f"{durable!r} on the streams of prefix "
                                 f"{self.backend.opts.stream_prefix!r})")
        positions = []
        active = False
        for topic, stream, info in durables:
            floor = info.ack_floor.stream_seq if info.ack_floor else 0
            positions.append(base.GroupPosition(
                topic=topic, partition=None,
                committed=floor + 1 if floor else None,
                end_offset=stream.state.last_seq + 1,
                lag=(info.num_pending or 0) + (info.num_ack_pending or 0)))
            active = active or bool(info.num_waiting)
        return base.GroupInfo(name=group,
                              state="Active" if active else "Idle",
                              members=None, positions=positions)


#: how the backend describes a group's durable consumers
GROUP_DESCRIPTION = "notifbus group "

#: the class :func:`notifbus.admin.for_backend` loads
ADMIN = NatsAdmin
