"""TLS and SASL options and checks shared by the Kafka-protocol backends.

Settings that cannot work are refused with a
:class:`~notifbus.errors.ConfigError` when a transport is created, before
anything connects. No client library here, so that every Kafka backend can
use it whatever client library it is built on; each maps what
:func:`sasl_login` and :func:`uses_tls` accept to its own client's
settings.
"""

import os
import ssl

from oslo_config import cfg

from notifbus import errors

SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
SSL_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_OPTIONS = ("sasl_mechanism", "sasl_username", "sasl_password")
SSL_OPTIONS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")


def security_opts():
    """The security options of a Kafka backend's group, new objects at
    each call."""
    return [
        cfg.StrOpt("security_protocol", default="PLAINTEXT",
                   choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT",
                            "SASL_SSL"],
                   help="Protocol used to talk to the brokers."),
        cfg.StrOpt("sasl_mechanism",
                   choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
                   help="SASL mechanism, with a SASL_* security_protocol "
                        "only; PLAIN when unset."),
        cfg.StrOpt("sasl_username",
                   help="SASL user name; the transport URL's user name "
                        "wins."),
        cfg.StrOpt("sasl_password", secret=True,
                   help="SASL password; the transport URL's password "
                        "wins."),
        cfg.StrOpt("ssl_cafile",
                   help="CA bundle that verifies the brokers' "
                        "certificates; the system's CAs when unset."),
        cfg.StrOpt("ssl_certfile", help="Client certificate (mutual TLS)."),
        cfg.StrOpt("ssl_keyfile", help="Client private key (mutual TLS)."),
        cfg.StrOpt("ssl_password", secret=True,
                   help="Password of the client private key."),
        cfg.BoolOpt("ssl_check_hostname", default=True,
                    help="Check that the broker certificate matches its "
                         "host name."),
    ]


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
