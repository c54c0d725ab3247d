"""TLS and SASL checks shared by the Kafka-protocol backends (their
options are declared in :mod:`notifbus.backends.kafka_common.options`).

Settings that cannot work are refused with a
:class:`~notifbus.errors.ConfigError` when a transport is created, before
anything connects. No client library here, so that every Kafka backend can
use it whatever client library it is built on; each maps what
:func:`sasl_login` and :func:`uses_tls` accept to its own client's
settings.

What a connection that the client library could not make ran into is
found by :func:`session_problem`: one TLS handshake per broker as the
client makes it (and, given a ``login``, the client's SASL login on the
same connection), which names the cause a client library reports vaguely
or not at all: a certificate signed by another CA or issued for another
name, a TLS listener reached without TLS, a listener that does not answer
TLS. :func:`login_refused` words a refused SASL login the same way for
every backend.
"""

import os
import socket
import ssl
import time

from notifbus import errors

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_OPTIONS = ("sasl_mechanism", "sasl_username", "sasl_password")
SSL_OPTIONS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")

#: most time the diagnosis of a failed connection may take, in seconds
PROBE_TIMEOUT_S = 1.5
#: what :func:`probe_session` returns when the session could be made
SESSION_OK = object()
# OpenSSL verify codes of a certificate issued for another name
_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, _IP_ADDRESS_


def sasl_login(opt, protocol, username=None, password=None):
    """``(mechanism, user, password)`` where ``protocol`` uses SASL, else
    ``None``. The transport URL's ``username`` and ``password`` win over
    the options.

    :raises ConfigError: a SASL protocol without credentials, or SASL
        options set with a protocol without SASL.
    """
    if protocol not in SASL_PROTOCOLS:
        refuse_unused(opt, SASL_OPTIONS, protocol, "no SASL",
                      "SASL_PLAINTEXT or SASL_SSL")
        return None
    user = username or opt.get("sasl_username")
    password = password or opt.get("sasl_password")
    if not user or not password:
        raise errors.ConfigError(
            f"security_protocol {protocol} needs a user name and a "
            f"password, in the transport URL (user:pass@host) or in "
            f"sasl_username and sasl_password")
    return opt.get("sasl_mechanism") or "PLAIN", user, password


def uses_tls(opt, protocol):
    """Whether ``protocol`` uses TLS; where it does, the ``ssl_*`` files
    of ``opt`` exist and load.

    :raises ConfigError: a file is missing or does not load, or TLS
        options are set with a protocol without TLS.
    """
    if protocol not in SSL_PROTOCOLS:
        refuse_unused(opt, SSL_OPTIONS, protocol, "no TLS",
                      "SSL or SASL_SSL")
        return False
    ssl_context(opt)
    return True


def refuse_unused(opt, names, protocol, lacking, instead):
    """A ConfigError when any option of ``names`` is set although
    ``protocol`` does not use it: the connection would silently go
    without the security it was meant to have."""
    found = [name for name in names if opt.get(name)]
    if found:
        raise errors.ConfigError(
            f"{', '.join(found)} set while security_protocol is {protocol}, "
            f"which has {lacking}: set security_protocol to {instead}, or "
            f"unset {', '.join(found)}")


def ssl_context(config):
    """A TLS context from ``config`` (``ssl_*`` options), built here so
    that missing or broken files are a ConfigError before connecting."""
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        path = config.get(name)
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise errors.ConfigError(
                f"{name} {path!r} does not exist or is not a readable file")
    if config.get("ssl_keyfile") and not config.get("ssl_certfile"):
        raise errors.ConfigError("ssl_keyfile is set without ssl_certfile: "
                                 "a client key needs its certificate")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = config.get("ssl_check_hostname", True)
    try:
        if config.get("ssl_cafile"):
            context.load_verify_locations(config["ssl_cafile"])
        else:
            context.load_default_certs()
    except (ssl.SSLError, OSError) as exc:
        raise errors.ConfigError(
            f"ssl_cafile {config['ssl_cafile']!r} holds no usable CA "
            f"certificate: {exc}") from exc
    if config.get("ssl_certfile"):
        # never None: OpenSSL would prompt on the terminal for a password
        password = config.get("ssl_password") or (lambda: b"")
        try:
            context.load_cert_chain(config["ssl_certfile"],
                                    config.get("ssl_keyfile"), password)
        except (ssl.SSLError, OSError) as exc:
            raise errors.ConfigError(
                f"the client certificate {config['ssl_certfile']!r} and key "
                f"{config.get('ssl_keyfile') or '(in the same file)'!r} do "
                f"not load (wrong file, key not matching, or ssl_password "
                f"missing or wrong): {exc}") from exc
    return context


def mechanism_refused(where, mechanism, detail):
    """The message of a SASL mechanism that the broker at ``where`` does
    not enable; ``detail`` says which it does."""
    return (f"{where} does not accept SASL mechanism {mechanism} "
            f"({detail}): set sasl_mechanism to one that the broker "
            f"enables")


def login_refused(where, user, mechanism, detail):
    """The message of a SASL login that the broker at ``where`` refused;
    ``detail`` is the broker's or client library's reason, which holds no
    password."""
    return (f"authentication failed at {where}: wrong credentials for user "
            f"{user!r} with SASL mechanism {mechanism} ({detail}); check "
            f"the user name and password (user:password@ in the transport "
            f"URL, or sasl_username and sasl_password) and that the broker "
            f"holds {mechanism} credentials for this user")


def probe_session(config, host, port, timeout, login=None):
    """One connection to ``host:port`` as the client would make it.

    With a TLS ``security_protocol``: a TLS handshake with the ``ssl_*``
    settings of ``config``, then ``login(sock, deadline)`` on the TLS
    socket when given. With ``SASL_PLAINTEXT`` and a ``login``: the login
    alone. With another protocol: whether ``host:port`` answers a TLS
    handshake, i.e. is a TLS listener that the client cannot talk to.

    Returns :data:`SESSION_OK`, ``None`` when it taught nothing
    (unreachable, or no TLS there while the protocol has none), or
    ``(problem, retriable)``; ``login`` returns the same.
    """
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    protocol = config["security_protocol"]
    with sock:
        if protocol not in SSL_PROTOCOLS:
            if login is not None:
                return login(sock, deadline)
            return _tls_listener(sock, host, port, protocol)
        try:
            tls = ssl_context(config).wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            return _verify_failed(host, port, exc), False
        except ssl.SSLError as exc:
            # a connection cut mid-handshake may go better next time; a
            # refused or garbled handshake will not
            cut = isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError,
                                   ssl.SSLSyscallError))
            return (f"the TLS handshake with {host}:{port} failed "
                    f"({exc.reason or exc}): is it a TLS listener?", cut)
        except socket.timeout:
            return (f"{host}:{port} did not complete a TLS handshake within "
                    f"{timeout:.1f} s: is it a TLS listener?", True)
        except OSError as exc:
            return (f"{host}:{port} broke off the TLS handshake ({exc!r}): "
                    f"is it a TLS listener?", True)
        with tls:
            return SESSION_OK if login is None else login(tls, deadline)


def _tls_listener(sock, host, port, protocol):
    """``(problem, False)`` when ``host:port`` answers a TLS handshake
    although ``protocol`` has no TLS, else ``None``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        context.wrap_socket(sock, server_hostname=host).close()
    except (ssl.SSLError, OSError):
        return None
    instead = ("SASL_SSL" if protocol in SASL_PROTOCOLS
               else "SSL (SASL_SSL where the listener wants a SASL login)")
    return (f"{host}:{port} is a TLS listener but security_protocol is "
            f"{protocol}: set security_protocol to {instead} and "
            f"ssl_cafile", False)


def _verify_failed(host, port, exc):
    if exc.verify_code in _NAME_MISMATCH:
        hint = (f"the broker's certificate is not issued for {host}: "
                f"connect by a name it holds, or set "
                f"ssl_check_hostname=false")
    else:
        hint = ("check that ssl_cafile holds the CA that signed the "
                "broker's certificate")
    return (f"the TLS handshake with {host}:{port} failed: certificate "
            f"verify failed: {exc.verify_message}; {hint}")


def session_problem(config, hosts, default_port, timeout, login=None):
    """What keeps every broker of ``hosts`` (``(host, port)`` pairs) from
    a session with this client, as ``(problem, retriable)``, or ``None``:
    one :func:`probe_session` per host, within ``timeout`` seconds in
    all, until one succeeds. ``login(host, port)`` gives the login of a
    host, if any."""
    deadline = time.monotonic() + timeout
    found = None
    for host, port in hosts:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        port = port or default_port
        outcome = probe_session(
            config, host, port, left,
            None if login is None else login(host, port))
        if outcome is SESSION_OK:
            return None
        found = found or outcome
    return found
