"""Kafka backend, on kafka-python.

Connection string::

    notifbus+kafka://[user:password@]host1[:9092][,host2[:9092]]/[vhost]?opt=v

Features:

- produce with the broker's acknowledgement (``acks=all`` by default):
  each batch of the bus is encoded once as Kafka record batches of
  notifbus's own (:mod:`~notifbus.backends.kafka.records`) and sent as one
  produce request per broker (:mod:`~notifbus.backends.kafka.produce`),
  written and answered on connections of notifbus's own
  (:mod:`~notifbus.backends.kafka.wire`; with SASL, over kafka-python's);
  with ``batch_writer=false`` or the idempotent producer
  (``enable_idempotence``), kafka-python's producer sends the records one
  by one;
- topics created on first use with ``num_partitions`` partitions;
- consumer groups with manual commits: the bus commits after dispatch;
- SASL (PLAIN, SCRAM-SHA-256/512) and TLS, with certificate verification on
  by default; credentials come from the URL or from the options.

Options: the ``[notifbus_kafka]`` group, see :func:`KafkaBackend.list_opts`;
each can be overridden in the URL query.

Broker-specific workarounds: :mod:`notifbus.backends.kafka_common.quirks`;
brokers tested, and their limits: ``doc/source/brokers.rst``.

Security: ``security_protocol`` is ``PLAINTEXT`` (the default), ``SSL``,
``SASL_PLAINTEXT`` or ``SASL_SSL``, as in Kafka::

    notifbus+kafka://u:p@h1:9093/?security_protocol=SASL_SSL&ssl_cafile=ca.pem

- TLS (``SSL``, ``SASL_SSL``) verifies the broker's certificate chain
  against ``ssl_cafile`` (else the system's CAs) and its name against the
  address connected to: the bootstrap host, then the listeners the brokers
  advertise. ``ssl_check_hostname=false`` skips the name check, never the
  chain. ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_password`` present a
  client certificate (mutual TLS).
- SASL (``SASL_PLAINTEXT``, ``SASL_SSL``) uses ``sasl_mechanism`` PLAIN
  (when unset), SCRAM-SHA-256 or SCRAM-SHA-512. The user name and password
  of the transport URL win over ``sasl_username`` and ``sasl_password``.
  PLAIN over ``SASL_PLAINTEXT`` sends the password in the clear: prefer
  ``SASL_SSL``.
- Settings that cannot work are refused with a ``ConfigError`` when the
  transport is created, before anything connects: a SASL protocol without
  credentials, SASL or TLS options with a protocol that does not use them,
  and certificate or key files that are missing or do not load.
- Before a client connects with TLS or SASL, one connection to a
  bootstrap broker makes the TLS handshake and the SASL login as the
  client would (:mod:`~notifbus.backends.kafka.sasl`): kafka-python 3.0
  waits without limit for a TLS handshake that a listener without TLS
  never answers, and retries refused handshakes and logins until its
  bootstrap timeout, then says only that no broker answered. Without TLS,
  a failed bootstrap is followed by a TLS handshake. What they find fails
  the send, or the listener start, with the reason: wrong credentials
  (naming the user and the mechanism), a mechanism the broker does not
  enable, a certificate signed by another CA or issued for another name,
  at once and without retries (only a change of configuration or
  certificate cures it); a TLS listener reached without TLS, likewise but
  after ``bootstrap_timeout_ms``; a listener that does not answer TLS,
  retriably.
- Passwords appear in no message and no log: brokers are named by
  ``host:port`` only, the passwords handed to kafka-python print as
  ``'***'`` (its admin client logs its configuration at DEBUG level), and
  the SASL token in kafka-python's DEBUG lines, which holds PLAIN's
  password, is hidden.
- Tested on Apache Kafka's own listeners
  (``tests/functional/test_kafka_security.py``): ``SSL``, and
  ``SASL_SSL`` with PLAIN and SCRAM-SHA-512, credentials in the URL or in
  the options, and each failure above. ``SASL_PLAINTEXT``, SCRAM-SHA-256
  and client certificates are checked by unit tests only (settings and
  refusals), not against a broker.

Install with ``pip install notifbus[kafka]``.
"""

from notifbus.backends.kafka.backend import KafkaBackend

__all__ = ["KafkaBackend"]
