"""The typed core passes mypy (the modules listed under ``[tool.mypy]``
in pyproject.toml), and the package says it is typed (PEP 561)."""

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_package_ships_py_typed():
    assert (ROOT / "notifbus" / "py.typed").is_file()
    assert "notifbus = py.typed" in (ROOT / "setup.cfg").read_text()


def test_the_typed_modules_pass_mypy(tmp_path):
    found = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert found.returncode == 0, found.stdout + found.stderr
