"""Throw-away certificates for the TLS tests, made with ``cryptography``.

:func:`make_ca` writes a self-signed CA, :func:`issue` a server (or client)
certificate and key it signs, for the host names and IP addresses given.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class CA:
    def __init__(self, name, key, cert, path):
        self.name = name
        self.key = key
        self.cert = cert
        #: PEM file of the CA certificate (an ``ssl_cafile``)
        self.path = str(path)


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder):
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(
        now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1))


def _write_key(key, path, password=None):
    encryption = (serialization.BestAvailableEncryption(password.encode())
                  if password else serialization.NoEncryption())
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        encryption))
    return str(path)


def make_ca(directory, name="notifbus test CA"):
    """A self-signed CA; its certificate is written to
    ``directory/<name>.pem``."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateBuilder().subject_name(_name(name)).issuer_name(
        _name(name)).public_key(key.public_key()).serial_number(
        x509.random_serial_number()).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    ).add_extension(
        x509.KeyUsage(digital_signature=True, content_commitment=False,
                      key_encipherment=False, data_encipherment=False,
                      key_agreement=False, key_cert_sign=True,
                      crl_sign=True, encipher_only=False,
                      decipher_only=False), critical=True
    ).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
        critical=False)
    cert = _validity(builder).sign(key, hashes.SHA256())
    path = directory / f"{name.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CA(name, key, cert, path)


def issue(ca, directory, stem, names, key_password=None):
    """A certificate signed by ``ca`` for ``names`` (host names or IP
    addresses), written to ``directory/<stem>.pem`` with its key in
    ``directory/<stem>.key``; returns both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    builder = x509.CertificateBuilder().subject_name(
        _name(names[0])).issuer_name(ca.cert.subject).public_key(
        key.public_key()).serial_number(
        x509.random_serial_number()).add_extension(
        x509.SubjectAlternativeName(alt_names), critical=False
    ).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    ).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                               ExtendedKeyUsageOID.CLIENT_AUTH]),
        critical=False
    ).add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca.key.public_key()), critical=False)
    cert = _validity(builder).sign(ca.key, hashes.SHA256())
    cert_path = directory / f"{stem}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(cert_path), _write_key(key, directory / f"{stem}.key",
                                      key_password)
