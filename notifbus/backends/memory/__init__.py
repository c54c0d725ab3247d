"""In-memory backend: the reference implementation of the backend contract.

Used by unit tests, by the demo when no broker is at hand, and as the
baseline that other backends are checked against. It stores everything in
the process' memory, so nothing survives a restart and logs grow without
bound: it is not meant for production.

Features:

* topics with a fixed number of partitions, each an append-only log whose
  offsets are list indexes;
* consumer groups with committed offsets, round-robin assignment,
  rebalancing on join and leave with ``on_revoke`` called before a
  partition changes hands (:mod:`notifbus.backends.memory.group`), and
  ``auto_offset_reset``;
* blocking :meth:`MemoryConsumer.poll` with :meth:`~MemoryConsumer.wakeup`.

Faults (a broker down, failed produce calls) are injected by wrapping a
backend in :class:`notifbus.testing.faults.FaultyBackend`.

Connection string::

    notifbus+memory://name/

``name`` names a cluster (``default`` when left out). Every backend in one
process that names the same cluster shares its topics, groups and offsets,
so a notifier transport and a listener transport created separately see the
same data. :func:`cluster` returns a cluster by name and :func:`reset`
drops clusters between tests.

Options: ``auto_offset_reset`` (group ``[notifbus_memory]`` or the URL's
query), and two ``[notifbus]`` options the transport passes along
(:attr:`MemoryBackend.common_options`): ``num_partitions``, the partitions
of a topic created on first use by :meth:`MemoryBackend.produce` or
:meth:`MemoryBackend.subscribe`, and ``max_message_bytes``: a record whose
:attr:`~notifbus.record.Record.size` is larger fails with
:class:`~notifbus.errors.RecordTooLarge`. A backend built directly, without
a transport, that is not given them uses 4 partitions and 1048576 bytes.

The cluster, the in-process broker, is in
:mod:`notifbus.backends.memory.broker`; its lock guards every consumer's
state too, and callbacks run without it held.
"""

from notifbus.backends.memory.backend import MemoryBackend

__all__ = ["MemoryBackend"]
