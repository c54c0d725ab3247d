"""What both Kafka backends (``kafka`` on kafka-python, ``rdkafka`` on
confluent-kafka) share: the options that depend on each other and the
brokers' quirks."""
