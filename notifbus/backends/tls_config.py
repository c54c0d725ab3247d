"""TLS and SASL checks shared by the Kafka-protocol backends.

Settings that cannot work are refused with a
:class:`~notifbus.errors.ConfigError` when a transport is created, before
anything connects. Standard library only, so that every Kafka backend can
use it whatever client library it is built on.
"""

import os
import ssl

from notifbus import errors


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
