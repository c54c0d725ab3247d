"""What the suite does when a program its functional tests start is
missing: skip elsewhere, fail in CI, naming the Debian package."""

import pytest

from tests import services


@pytest.fixture
def no_stunnel(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFBUS_STUNNEL", str(tmp_path / "absent"))


def test_an_override_names_the_binary(monkeypatch, tmp_path):
    binary = tmp_path / "stunnel-test"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("NOTIFBUS_STUNNEL", str(binary))
    assert services.find("stunnel") == str(binary)


def test_missing_program_skips_outside_ci(no_stunnel, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert services.find("stunnel") is None
    with pytest.raises(pytest.skip.Exception, match="package stunnel4"):
        services.require("stunnel")
    services.check_all_in_ci()


def test_missing_program_fails_in_ci(no_stunnel, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="package stunnel4"):
        services.require("stunnel")
    with pytest.raises(pytest.UsageError, match="apt-get install stunnel4"):
        services.check_all_in_ci()
