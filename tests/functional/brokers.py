"""One-node Kafka brokers that a fault test kills and starts again.

Both keep their log across a restart, on the same address:

- :class:`RestartableApacheKafka`: an Apache Kafka KRaft node, restarted on
  its data directory;
- :class:`RestartableTansu`: a Tansu broker keeping its log in a local S3
  server (moto), started again on the same bucket and port.

Each has ``name`` (as in the test ids), ``broker_quirks``, ``address``,
``url(backend, **query)``, ``start()``, ``kill()`` (SIGKILL),
``start_again()`` and ``stop()``.
"""

from notifbus.testing.kafka import KafkaCluster


class RestartableApacheKafka:
    name = "apache-kafka"
    broker_quirks = "none"

    def __init__(self, broker_config):
        self.cluster = KafkaCluster(nodes=1, broker_config=broker_config)
        self.node = self.cluster.node(1)

    @property
    def address(self):
        return self.cluster.address

    def url(self, backend="kafka", **query):
        return self.cluster.url(backend, **query)

    def start(self):
        self.cluster.start()
        return self

    def kill(self):
        self.node.kill()

    def start_again(self):
        self.node.start()
        self.node.wait_ready(90)

    def stop(self):
        self.cluster.stop()


class RestartableTansu:
    name = "tansu"
    broker_quirks = "tansu"

    def __init__(self, s3_server):
        self._s3 = s3_server
        self._bucket = s3_server.new_bucket()
        self._broker = s3_server.broker(self._bucket)
        self._previous = []

    @property
    def address(self):
        return self._broker.address

    def url(self, backend="kafka", **query):
        return self._broker.url(backend, **query)

    def start(self):
        self._broker.start()
        return self

    def kill(self):
        self._broker.stop(kill=True)

    def start_again(self):
        self._previous.append(self._broker)
        self._broker = self._s3.broker(self._bucket, port=self._broker.port)
        self._broker.start()

    def stop(self):
        for broker in (*self._previous, self._broker):
            broker.stop()
