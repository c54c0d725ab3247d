"""What both Kafka backends (``kafka`` on kafka-python, ``rdkafka`` on
confluent-kafka) share: their options, declared once (security
included), with the rules between them (:mod:`.options`), and the
brokers' quirks (:mod:`.quirks`)."""
