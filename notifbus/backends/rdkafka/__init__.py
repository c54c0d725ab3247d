"""Kafka backend on confluent-kafka (librdkafka).

Connection string::

    notifbus+rdkafka://[user:password@]host1[:9092][,host2[:9092]]/?opt=v

The same contract as the ``kafka`` backend, through librdkafka's C client:

- a send returns per record once the broker acknowledged it (librdkafka's
  delivery reports, ``acks=all`` by default); a failed record comes back
  as a :class:`~notifbus.errors.DeliveryError` whose ``retriable`` flag
  says whether another attempt may succeed, and a record over librdkafka's
  size limit as :class:`~notifbus.errors.RecordTooLarge`;
- a send while no broker answers fails after ``bootstrap_timeout_ms`` with
  an error naming the brokers and librdkafka's last connection error; a
  TLS or SASL failure fails it at once, without retries. While no broker
  answers, records that never left the client are taken back (purged)
  when an attempt fails; records that librdkafka holds after an attempt
  ended otherwise are not produced again by the bus's retry, which waits
  for their delivery (:mod:`notifbus.backends.rdkafka.delivery`), so
  that a retry stores nothing twice;
- with ``acks=all``, an attempt waiting on a partition with fewer
  in-sync replicas than its ``min.insync.replicas`` ends after about a
  second with a retriable error naming NOT_ENOUGH_REPLICAS (librdkafka
  retries that refusal itself until ``message_timeout_ms``): ``retry=0``
  fails fast, and a retrying send goes on once the replicas are back;
- topics created on first use with ``num_partitions`` partitions;
- consumer groups without automatic commits or offset stores: the bus
  commits, synchronously, what it dispatched, and commits again from
  ``on_revoke`` before a rebalance takes partitions away. A poll waits in
  slices of at most 100 ms, so that ``wakeup`` takes effect within one;
- replay outside any group: ``end_offsets`` (high watermarks),
  ``offsets_for_time`` and ``read``;
- SASL (PLAIN, SCRAM-SHA-256/512) and TLS, checked as the ``kafka``
  backend checks them: settings that cannot work are refused with a
  :class:`~notifbus.errors.ConfigError` when the transport is created,
  and passwords appear in no message and no log (librdkafka's own debug
  output shows none). A TLS or SASL failure that librdkafka reports fails
  a send, or a listener start, at once and without retries, with the
  ``kafka`` backend's words: a refused login names the user and the
  mechanism, and a failed TLS handshake is made again by notifbus for its
  cause (librdkafka words a certificate issued for another name as a CA
  problem). While no broker answers, one TLS handshake per outage finds a
  TLS listener reached without TLS. Tested on Apache Kafka's own
  listeners as the ``kafka`` backend is
  (``tests/functional/test_kafka_security.py``).

eventlet: librdkafka blocks in C, where eventlet cannot switch. In a
monkey-patched process the calls that wait (waiting for delivery reports,
metadata, commits, watermarks) run in eventlet's native thread pool, and a
consumer polls without waiting and sleeps cooperatively between polls, so
that its rebalance callbacks run on the listener's green thread. Closing
runs on a native thread of its own, bounded in time. librdkafka's log
lines and errors are collected from its threads and logged by the caller.

Options: the ``[notifbus_rdkafka]`` group, see
:func:`RdkafkaBackend.list_opts`; each can be overridden in the URL query.
``extra_config`` passes further librdkafka properties as they are
(``extra_config=socket.keepalive.enable:true``), except those notifbus
sets itself.

Broker-specific workarounds: :mod:`notifbus.backends.kafka_common.quirks`;
brokers tested, and their limits: ``doc/source/brokers.rst``.

Install with ``pip install notifbus[rdkafka]``.
"""

from notifbus.backends.rdkafka.backend import RdkafkaBackend

__all__ = ["RdkafkaBackend"]
