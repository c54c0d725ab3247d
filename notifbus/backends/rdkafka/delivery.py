"""Delivery reports of the rdkafka backend's produce calls, and the
records that librdkafka still holds after an attempt gave up on them.

An attempt that ends before librdkafka reported all its records (the
bus's ``send_timeout_ms``, or a cause found meanwhile, such as a
partition with too few in-sync replicas) leaves those records in
librdkafka, which keeps sending them until ``message_timeout_ms``. When
the bus retries such a record (the same :class:`~notifbus.record.Record`
object), producing it again would store it twice once the brokers take
both copies. :class:`HeldRecords` remembers the records given up on, and
the retry follows the first delivery instead: it waits for its report,
or takes it at once if it came meanwhile. Only a record whose first
delivery failed is produced again.

The report callbacks run on whichever thread serves the producer (a
native one under eventlet): nothing here takes a lock. Each step is one
operation on a list or a dict, atomic in CPython, and the order of the
steps in :meth:`Delivery.report` and :meth:`Delivery.follow` makes sure
that a follower hears of an outcome whichever runs first.
"""

import time

#: the outcome of a record not reported yet
PENDING = object()


class Delivery:
    """Delivery reports of one produce call: ``outcome[i]`` is
    :data:`PENDING` until record ``i`` is reported, then ``None`` if it
    was acknowledged or librdkafka's KafkaError if it failed.

    ``on_answer`` is called (without arguments) on every acknowledgement.
    """

    __slots__ = ("outcome", "on_answer", "followers")

    def __init__(self, count, on_answer):
        self.outcome = [PENDING] * count
        self.on_answer = on_answer
        # index -> [report(err, message)] of later attempts waiting
        self.followers = {}

    @property
    def pending(self):
        # by identity: a KafkaError compares itself with error codes only
        return sum(1 for outcome in self.outcome if outcome is PENDING)

    def report(self, index, err, message):
        """librdkafka's ``on_delivery`` for record ``index``; the first
        report of a record counts."""
        if self.outcome[index] is PENDING:
            self.outcome[index] = err
        if err is None:
            self.on_answer()
        for follower in list(self.followers.get(index, ())):
            follower(err, message)

    def follow(self, index, report):
        """Have ``report(err, message)`` called with the outcome of record
        ``index``: at once if it is known, else when it is reported (it
        may be called twice with the same outcome)."""
        self.followers.setdefault(index, []).append(report)
        outcome = self.outcome[index]
        if outcome is not PENDING:
            report(outcome, None)


class HeldRecords:
    """Records that an attempt gave up on while librdkafka held them, by
    identity, each with the delivery (and index in it) that reports it.

    :param keep_s: how long, in seconds, an entry is kept: longer than
        librdkafka's ``message_timeout_ms``, after which every record it
        held has been reported, plus the time a retry may take to come.
    """

    def __init__(self, keep_s):
        self._keep_s = keep_s
        # id(record) -> (record, delivery, index, time given up)
        self._held = {}

    def __len__(self):
        return len(self._held)

    def hold(self, records, delivery):
        """Remember the records of ``delivery`` still pending; a record
        held already keeps its first delivery."""
        now = time.monotonic()
        for index, record in enumerate(records):
            if delivery.outcome[index] is not PENDING:
                continue
            held = self._held.get(id(record))
            if held is None or held[0] is not record:
                self._held[id(record)] = (record, delivery, index, now)
        self._expire(now)

    def follow(self, record, report):
        """Whether ``record`` is held and ``report(err, message)`` will
        hear the outcome of its first delivery (at once if it was
        acknowledged meanwhile). ``False``: produce it, it is not held,
        or its first delivery failed."""
        held = self._held.get(id(record))
        if held is None or held[0] is not record:
            return False
        _, delivery, index, _ = held
        outcome = delivery.outcome[index]
        if outcome is PENDING or outcome is None:
            delivery.follow(index, report)
            return True
        self._held.pop(id(record), None)
        return False

    def release(self, records, outcomes):
        """Forget the records acknowledged (``outcomes[i] is None``)."""
        if not self._held:
            return
        for record, outcome in zip(records, outcomes):
            if outcome is None:
                held = self._held.get(id(record))
                if held is not None and held[0] is record:
                    self._held.pop(id(record), None)

    def clear(self):
        """Forget everything: the producer that held them is gone."""
        self._held.clear()

    def _expire(self, now):
        # list() copies the items at once: another thread's produce may
        # change the dict meanwhile
        stale = [key for key, (_, _, _, since) in list(self._held.items())
                 if now - since > self._keep_s]
        for key in stale:
            self._held.pop(key, None)
