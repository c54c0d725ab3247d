"""NATS JetStream backend, on nats-py.

Connection string::

    notifbus+nats://[user:password@]host1[:4222][,host2[:4222]]/[vhost]?opt=v

Features:

- a notifbus topic is a JetStream stream, ``<stream_prefix>_<topic>``
  (dots made underscores), created on first use or checked when it exists;
  its partitions are the stream's subjects ``<stream_prefix>.<topic>.<n>``,
  so the bus's partitioning policies apply unchanged and the partition
  count is the number of subjects;
- a send returns once JetStream acknowledged every record (its PubAck):
  the record is stored per the stream's replicas and storage. A lost
  PubAck makes the bus retry, which may store the record twice (at least
  once);
- a consumer group is a durable pull consumer per stream, named from the
  group: the listeners of one pool pull from the same durable, so each
  notification goes to one of them, and every pool gets every
  notification. A listener pulls only what it asked for, so the pool
  shares the load; it reads the stream in order, so each listener sees its
  share in the order it was sent;
- at least once: a record is acknowledged to JetStream (``+ACK``, waiting
  for the server's confirmation) only when the bus commits it after
  dispatch. ``commit(offsets)`` acknowledges the records this member holds
  below the offset (offsets are stream sequences); ``seek`` gives the
  records at and after the offset back (``-NAK``, redelivered at once);
  records still held when a listener stops are given back the same way. A
  listener that dies without stopping leaves its records to be redelivered
  after ``ack_wait_s``; while it is alive, records it holds longer than
  half of that are marked in progress (``+WPI``) so they are not
  redelivered under its feet;
- no rebalances: all members of a group read all partitions, so
  ``on_revoke`` is never called and ``assigned`` says yes once the
  durables and the member's pull subscription exist (set up by
  ``poll``). Unlike Kafka, a partition is not pinned to one member:
  records of one partition (one publisher's, with the ``key_hash``
  partitioner) keep their order for each listener, not across the
  listeners of a pool;
- where a new durable starts: ``auto_offset_reset`` (earliest or latest),
  or a replay from ``deliver_start_sequence`` or ``deliver_start_time``;
- replay outside any group (``notifbus replay``): ``end_offsets``,
  ``offsets_for_time``, ``read`` and ``count_records``, through
  short-lived consumers that acknowledge nothing;
- a record larger than the server's ``max_payload`` fails at once with
  :class:`~notifbus.errors.RecordTooLarge` naming that limit;
- TLS (``tls_cafile``, ``tls_certfile``/``tls_keyfile`` for mutual TLS,
  ``tls_verify``), refusing a server that does not speak TLS when TLS is
  configured; user and password (from the URL, which wins, or the options)
  or a token; a refused credential fails at once with a clear error that
  never shows the secret.

nats-py is asyncio: each backend runs one event loop in a dedicated OS
thread (:class:`~notifbus.loop_thread.LoopThread`) and callers wait for it
without blocking eventlet's hub when the process is monkey-patched.

Pull requests last at most ``pull_expires_s`` and no longer than the poll
that sends them: nats-server 2.9 hands a redelivery to a pull request
whose inbox is gone, and then neither delivers it until ``ack_wait_s`` nor
keeps its place. A stopping listener waits for its own pull requests to
end before it gives its records back.

Options, group ``[notifbus_nats]`` (see :func:`NatsBackend.list_opts`),
each of which can be overridden in the URL query:

- streams: ``stream_prefix``, ``retention``, ``max_age_s``,
  ``max_bytes``, ``replicas``, ``storage``;
- consumers: ``ack_wait_s``, ``max_ack_pending``,
  ``inactive_threshold_s``, ``auto_offset_reset``,
  ``deliver_start_sequence``, ``deliver_start_time``, ``pull_expires_s``;
  they apply when a durable is created, an existing durable keeps its
  configuration;
- connection: ``connect_timeout_s``, ``reconnect_time_wait_s``,
  ``max_reconnect_attempts``, ``client_name``;
- security: ``user``, ``password``, ``token``, ``tls``, ``tls_cafile``,
  ``tls_certfile``, ``tls_keyfile``, ``tls_verify``, ``tls_hostname``.

Install with ``pip install notifbus[nats]``.
"""

from notifbus.backends.nats.backend import NatsBackend

__all__ = ["NatsBackend"]
