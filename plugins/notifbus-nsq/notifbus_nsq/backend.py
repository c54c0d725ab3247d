"""The NSQ backend: notifications through nsqd, over NSQ's TCP protocol.

Connection string::

    notifbus+nsq://nsqd1:4150,nsqd2:4150/?msg_timeout_ms=60000

Mapping of notifbus onto NSQ:

- a notifbus topic (``<topic>.<priority>``) is an NSQ topic of that name;
- a partition is one nsqd of the URL: topic ``t`` has as many partitions
  as the URL has hosts, and the bus's partitioner picks the nsqd of each
  record (``key_hash`` keeps one publisher on one nsqd, so its
  notifications keep their order; ``round_robin`` spreads them);
- a pool (consumer group) is an NSQ channel: each channel gets every
  message of its topic, the listeners of one pool share its messages.
  Each listener subscribes to its topics on every nsqd of the URL (no
  nsqlookupd);
- a send (PUB, MPUB for a batch) returns once nsqd answered ``OK``: the
  message is in nsqd's memory queue, or written to its disk queue when
  the memory queue is full (``--mem-queue-size=0``: always; see the
  README for what each survives);
- a record's offset is the listener's count of messages received, per
  topic and nsqd: it only orders the acknowledgements of that listener.
  The bus's commit of offset ``n`` finishes (``FIN``) every message
  below ``n``. What is delivered but not finished is kept in flight with
  ``TOUCH``; nsqd redelivers it after ``msg_timeout_ms`` if the listener
  dies, and a listener that stops gives it back (``REQ``) at once: at
  least once. The bus's own requeue (with its backoff and
  ``max_redeliveries``) holds the message in the listener, not in nsqd;
- replay and seek are unsupported (:attr:`NsqBackend.unsupported`): nsqd
  keeps no log, a message is gone once its channels finished it; so are
  rebalances: every member of a channel reads from every nsqd, and
  ``on_revoke`` is called only for the messages of a connection that
  ended.

Options (group ``[notifbus_nsq]`` or the URL's query): ``msg_timeout_ms``,
``max_in_flight``, ``heartbeat_interval_ms``, ``connect_timeout_ms``;
see :meth:`NsqBackend.list_opts`.
"""

import asyncio
import collections
import logging
import socket

from oslo_config import cfg

from notifbus import errors
from notifbus.backends import base
from notifbus.loop_thread import LoopClosed, LoopThread
from notifbus_nsq import protocol, records
from notifbus_nsq.connection import Connection, NsqError

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 4150
#: An MPUB carries at most this many bytes (nsqd's --max-body-size is
#: 5 MiB by default); larger batches go out as several.
MAX_MPUB_BYTES = 4 * 1024 * 1024
#: nsqd errors after which another attempt cannot succeed.
PERMANENT = (b"E_BAD_TOPIC", b"E_BAD_MESSAGE", b"E_BAD_BODY",
             b"E_UNAUTHORIZED")

UNSUPPORTED_REPLAY = ("nsqd keeps no log (a message is gone once every "
                      "channel of its topic finished it): the nsq backend "
                      "cannot replay topics")


def check_name(kind, name):
    """:raises ConfigError: nsqd would refuse ``name`` as a topic or
    channel."""
    if not protocol.valid_name(name):
        raise errors.ConfigError(
            f"{name!r} cannot be an NSQ {kind}: nsqd accepts 1 to 64 "
            f"characters of letters, digits, '.', '_' and '-'; rename the "
            f"{'pool' if kind == 'channel' else 'topic'}")


class NsqBackend(base.Backend):
    """Publishes to and subscribes on the nsqd hosts of the URL."""

    unsupported = frozenset({"replay", "seek", "rebalance"})

    def __init__(self, hosts, options, username=None, password=None):
        super().__init__(hosts, options, username, password)
        defaults = {opt.dest: opt.default for opt in self.list_opts()}
        self.options = {**defaults, **self.options}
        self.hosts = [(host or "127.0.0.1", port or DEFAULT_PORT)
                      for host, port in (self.hosts or [(None, None)])]
        self.loop = LoopThread(f"notifbus-nsq-{id(self):x}")
        self._publishers = {}
        self._publisher_locks = collections.defaultdict(asyncio.Lock)

    @classmethod
    def list_opts(cls):
        return [
            cfg.IntOpt("msg_timeout_ms", default=60000, min=1000,
                       help="How long nsqd waits for a listener to finish "
                            "or touch a message before it delivers it "
                            "again (IDENTIFY msg_timeout). Listeners touch "
                            "what they hold every half of it, up to "
                            "nsqd's --max-msg-timeout (15 min)."),
            cfg.IntOpt("max_in_flight", default=200, min=1,
                       help="Messages each connection of a listener may "
                            "hold unfinished (RDY count), per topic and "
                            "nsqd."),
            cfg.IntOpt("heartbeat_interval_ms", default=30000, min=1000,
                       help="How often nsqd sends a heartbeat on an idle "
                            "connection; it closes one that missed two."),
            cfg.IntOpt("connect_timeout_ms", default=5000, min=1,
                       help="How long connecting to nsqd and its IDENTIFY "
                            "may take."),
        ]

    def describe(self):
        return ",".join(f"{host}:{port}" for host, port in self.hosts)

    def features(self):
        """The IDENTIFY body of this backend's connections."""
        return {"client_id": socket.gethostname(),
                "hostname": socket.gethostname(),
                "user_agent": "notifbus-nsq",
                "feature_negotiation": True,
                "heartbeat_interval": self.options["heartbeat_interval_ms"],
                "msg_timeout": self.options["msg_timeout_ms"]}

    @property
    def connect_timeout_s(self):
        return self.options["connect_timeout_ms"] / 1000.0

    def call(self, coro, timeout, what):
        """Run ``coro`` on the loop thread within ``timeout`` seconds.

        :raises DeliveryError: on a timeout (retriable), a closed backend
            (not retriable), or what ``coro`` raised.
        """
        try:
            return self.loop.run(coro, timeout)
        except LoopClosed as exc:
            raise errors.DeliveryError(
                f"the NSQ backend for {self.describe()} is closed ({what})",
                retriable=False) from exc
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise errors.DeliveryError(
                f"nsqd at {self.describe()} did not answer within "
                f"{timeout:.1f} s ({what})") from exc
        except (NsqError, OSError) as exc:
            raise errors.DeliveryError(
                f"nsqd at {self.describe()} failed ({what}): {exc}") from exc

    # -- topics and publishing ----------------------------------------------

    def ensure_topic(self, topic, partitions, timeout):
        """nsqd creates a topic on its first message or subscription:
        nothing to do but check the name. Returns the number of nsqd hosts
        (``partitions`` is not used)."""
        check_name("topic", topic)
        return len(self.hosts)

    async def _publisher(self, index):
        """The open publishing connection to the nsqd at ``index``; one
        connection per nsqd, made by the first caller that needs it."""
        async with self._publisher_locks[index]:
            conn = self._publishers.get(index)
            if conn is not None and conn.is_open:
                return conn
            host, port = self.hosts[index]
            conn = Connection(host, port, self.features(),
                              note=self.loop.note)
            await conn.open(self.connect_timeout_s)
            self._publishers[index] = conn
            return conn

    async def _publish_to(self, index, batches, results):
        """Send ``batches`` (``[(topic, [(position, body)])]``) to the
        nsqd at ``index`` in order; record each outcome in ``results``."""
        for topic, items in batches:
            positions = [position for position, _ in items]
            try:
                conn = await self._publisher(index)
                bodies = [body for _, body in items]
                command = (protocol.pub(topic, bodies[0]) if len(bodies) == 1
                           else protocol.mpub(topic, bodies))
                await conn.request(command)
            except (NsqError, OSError, asyncio.TimeoutError) as exc:
                self._fail(positions, index, exc, results)
                continue
            for position in positions:
                results[position] = None

    def _fail(self, positions, index, exc, results):
        host, port = self.hosts[index]
        code = getattr(exc, "code", b"")
        error = errors.DeliveryError(
            f"nsqd at {host}:{port} did not take the message: "
            f"{str(exc) or type(exc).__name__}",
            retriable=code not in PERMANENT)
        for position in positions:
            results[position] = error

    async def _produce(self, plan, count, timeout):
        results = [errors.DeliveryError(
            f"nsqd at {self.describe()} did not answer within "
            f"{timeout:.1f} s")] * count
        results = list(results)
        tasks = {asyncio.ensure_future(self._publish_to(index, batches,
                                                        results)): index
                 for index, batches in plan.items()}
        done, late = await asyncio.wait(tasks, timeout=timeout)
        for task in late:
            task.cancel()
            conn = self._publishers.pop(tasks[task], None)
            if conn is not None:  # its answers would come out of order
                conn.close()
        return results

    def produce(self, records_, partitions, timeout):
        plan = collections.defaultdict(list)
        for position, (record, partition) in enumerate(
                zip(records_, partitions)):
            index = partition % len(self.hosts)
            body = records.encode(record)
            batches = plan[index]
            if (batches and batches[-1][0] == record.topic and
                    protocol.mpub_size([b for _, b in batches[-1][1]] +
                                       [body]) <= MAX_MPUB_BYTES):
                batches[-1][1].append((position, body))
            else:
                batches.append((record.topic, [(position, body)]))
        try:
            return self.loop.run(
                self._produce(plan, len(records_), timeout), timeout + 5.0)
        except LoopClosed:
            closed = errors.DeliveryError(
                f"the NSQ backend for {self.describe()} is closed",
                retriable=False)
            return [closed] * len(records_)

    # -- listening ----------------------------------------------------------

    def subscribe(self, topics, group, on_revoke=None):
        from notifbus_nsq.consumer import NsqConsumer

        return NsqConsumer(self, topics, group, on_revoke)

    # -- replay: nsqd keeps no log --------------------------------------------

    def end_offsets(self, topic, timeout):
        raise NotImplementedError(UNSUPPORTED_REPLAY)

    def offsets_for_time(self, topic, timestamp_ms, timeout):
        raise NotImplementedError(UNSUPPORTED_REPLAY)

    def read(self, topic, partition, offset, max_records, timeout):
        raise NotImplementedError(UNSUPPORTED_REPLAY)

    def close(self, timeout=5.0):
        async def shutdown():
            for conn in self._publishers.values():
                conn.close()
            self._publishers.clear()

        self.loop.close(timeout, shutdown)
