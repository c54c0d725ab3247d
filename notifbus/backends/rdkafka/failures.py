"""What a confluent-kafka exception says: librdkafka's ``KafkaError``,
which a ``KafkaException`` carries as its first argument."""

from confluent_kafka import KafkaError, KafkaException


def _error(exc):
    if isinstance(exc, KafkaException) and exc.args and isinstance(
            exc.args[0], KafkaError):
        return exc.args[0]
    return None


def reason(exc: BaseException) -> str:
    """librdkafka's message for ``exc`` (its ``KafkaError.str()``), else
    ``str(exc)``."""
    error = _error(exc)
    return str(exc) if error is None else error.str()


def code(exc: BaseException):
    """librdkafka's error code of ``exc`` (a ``KafkaError`` constant), or
    ``None`` for an exception that carries none."""
    error = _error(exc)
    return None if error is None else error.code()
