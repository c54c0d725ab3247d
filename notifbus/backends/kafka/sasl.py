"""SASL with Kafka brokers around kafka-python: a login that says why it
failed, and debug logs without PLAIN passwords.

kafka-python 3.0 answers a refused SASL login by trying again until its
bootstrap timeout and then reports only that no broker answered (and a
broker that refused a login may close the connection before its answer
reaches kafka-python's reader). :func:`login` makes the login the client
would make, with kafka-python's own mechanism classes (PLAIN,
SCRAM-SHA-256/512), on a blocking socket of notifbus's
(:func:`~notifbus.backends.kafka.wire.exchange`), and returns what the
broker said, for :func:`~notifbus.backends.tls_config.probe_session`.

kafka-python logs every request at DEBUG level, among them the SASL
token, which for PLAIN holds the password in the clear, and the encoded
bytes of that request. :data:`HIDE_SASL_TOKENS`, a filter on the loggers
that write them, replaces the token and those bytes.
"""

import logging
import struct

import kafka.errors as kerrors
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslBytesRequest,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from notifbus.backends import tls_config
from notifbus.backends.kafka import wire as kafka_wire

_SASL_AUTHENTICATE = struct.pack(">h", SaslAuthenticateRequest.API_KEY)
# answers of a handshake that name the mechanism as the problem
_NO_MECHANISM = (kerrors.UnsupportedSaslMechanismError.errno,
                 kerrors.IllegalSaslStateError.errno)


def login(config, host, port):
    """The SASL login of a client with ``config`` (kafka-python settings)
    to ``host:port``, as a function of a connected socket and a deadline
    returning ``tls_config.SESSION_OK``, ``(problem, retriable)``, or
    ``None`` when the exchange broke off before the broker judged the
    credentials."""
    def run(sock, deadline):
        return _login(sock, deadline, config, host, port)

    return run


def _login(sock, deadline, config, host, port):
    where = f"{host}:{port}"
    mechanism_name = config["sasl_mechanism"]
    user = config["sasl_plain_username"]
    client_id = config["client_id"]
    try:
        handshake = kafka_wire.exchange(
            sock, SaslHandshakeRequest(mechanism=mechanism_name, version=1),
            SaslHandshakeResponse, 1, client_id, deadline)
    except (OSError, ValueError, struct.error):
        return None  # not a Kafka listener, or gone: the client will tell
    if handshake.error_code in _NO_MECHANISM:
        return (tls_config.mechanism_refused(
            where, mechanism_name,
            f"it accepts {', '.join(handshake.mechanisms) or 'none'}"),
            False)
    if handshake.error_code:
        return None
    mechanism = get_sasl_mechanism(mechanism_name)(host=host, **config)
    correlation_id = 1
    while not mechanism.is_done():
        correlation_id += 1
        try:
            answer = kafka_wire.exchange(
                sock, SaslAuthenticateRequest(
                    auth_bytes=mechanism.auth_bytes(), version=1),
                SaslAuthenticateResponse, correlation_id, client_id,
                deadline)
        except ConnectionError:
            # Kafka closes the connection of a refused login, at times
            # before its answer is read
            return (tls_config.login_refused(
                where, user, mechanism_name,
                "the broker closed the connection without an answer"),
                False)
        except (OSError, ValueError, struct.error):
            return None
        if answer.error_code:
            return (tls_config.login_refused(
                where, user, mechanism_name,
                answer.error_message or kerrors.for_code(
                    answer.error_code).__name__), False)
        try:
            mechanism.receive(answer.auth_bytes)
        except Exception as exc:  # noqa: BLE001 - SCRAM proof or format
            return (tls_config.login_refused(
                where, user, mechanism_name,
                f"the broker's answer does not check out: {exc}"), False)
    if not mechanism.is_authenticated():
        return (tls_config.login_refused(
            where, user, mechanism_name, "the broker did not confirm it"),
            False)
    return tls_config.SESSION_OK


class _HideSaslTokens(logging.Filter):
    """Replaces SASL authenticate requests among a record's arguments,
    and the encoded bytes of one, so that no password shows."""

    def filter(self, record):
        if isinstance(record.args, tuple) and any(
                map(_is_sasl_token, record.args)):
            record.args = tuple(
                "<SASL authenticate request, hidden>"
                if _is_sasl_token(arg) else arg for arg in record.args)
        return True


def _is_sasl_token(arg):
    if isinstance(arg, (SaslAuthenticateRequest, SaslBytesRequest)):
        return True
    # an encoded request: size, then the API key
    return (isinstance(arg, (bytes, bytearray, memoryview))
            and bytes(arg[4:6]) == _SASL_AUTHENTICATE)


HIDE_SASL_TOKENS = _HideSaslTokens()

# kafka-python's loggers that write requests and encoded bytes
for _name in ("kafka.protocol.parser", "kafka.net.connection"):
    if HIDE_SASL_TOKENS not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(HIDE_SASL_TOKENS)
