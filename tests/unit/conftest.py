"""Fixtures shared by the unit tests."""

import pytest

from tests import tlscerts


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """Client certificates from a test CA, one with a locked key, and a
    file that is no certificate: for the TLS option checks."""
    directory = tmp_path_factory.mktemp("certs")
    ca = tlscerts.make_ca(directory)
    cert, key = tlscerts.issue(ca, directory, "client", ["client.test"])
    locked_cert, locked_key = tlscerts.issue(
        ca, directory, "locked", ["client.test"], key_password="k3y-pw")
    junk = directory / "junk.pem"
    junk.write_text("not a certificate\n")
    return {"ca": ca.path, "cert": cert, "key": key,
            "locked_cert": locked_cert, "locked_key": locked_key,
            "junk": str(junk), "dir": directory}
