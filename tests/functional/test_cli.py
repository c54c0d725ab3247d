"""The ``notifbus`` command line: one-line errors, exit statuses,
``--version``, ``--debug`` and ``notifbus broker``."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import notifbus
from notifbus.cmd import main

NOTIFBUS = [sys.executable, "-m", "notifbus.cmd.main"]


def notifbus_command(*args, timeout=60):
    return subprocess.run(NOTIFBUS + list(args), capture_output=True,
                          text=True, timeout=timeout)


def _gone(pid):
    """Whether ``pid`` has exited (a zombie counts: it runs no more)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _gone(pid)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"notifbus {notifbus.__version__}\n"


def test_unknown_backend_is_one_line_and_status_2():
    done = notifbus_command("replay", "notifbus+kafak://127.0.0.1:1/", "t")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.rstrip("\n")]
    assert done.stderr.startswith(
        "notifbus replay: no notifbus backend named 'kafak'")


def test_debug_after_the_command_shows_the_traceback(capsys):
    assert main.main(["replay", "notifbus+kafak://127.0.0.1:1/", "t",
                      "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "BackendNotFound" in err
    assert err.splitlines()[-1].startswith("notifbus replay: no notifbus "
                                           "backend named 'kafak'")


def test_debug_before_the_command_still_counts(capsys):
    assert main.main(["--debug", "replay", "notifbus+kafak://127.0.0.1:1/",
                      "t"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_unknown_url_option_is_status_2(capsys):
    assert main.main(["replay", "notifbus+memory://c1/?lingerms=1",
                      "t"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notifbus replay: unknown option 'lingerms'")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("argv, prog", [
    (["replay"], "notifbus replay"),
    (["replay", "u", "t", "--from-offset", "x"], "notifbus replay"),
    (["spool"], "notifbus spool"),
    ([], "notifbus"),
])
def test_usage_errors_are_one_line(argv, prog, capsys):
    with pytest.raises(SystemExit) as info:
        main.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"{prog}: ")
    assert f"(see {prog} --help)" in err


def test_demo_with_a_broker_down_is_one_line_and_status_1():
    done = notifbus_command(
        "demo", "-n", "1", "--url",
        "notifbus+kafka://127.0.0.1:1/?send_timeout_ms=300")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("notifbus demo: notifbus+kafka could not "
                           "subscribe group 'notifbus-demo'")
    assert "127.0.0.1:1" in last


def test_an_unexpected_error_names_its_type():
    assert main.describe(KeyError("x")) == "KeyError: 'x'"
    assert main.describe(RuntimeError()) == "RuntimeError"
    assert main.exit_status(RuntimeError()) == main.FAILURE


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_broker_runs_until_a_signal(sig):
    process = subprocess.Popen(NOTIFBUS + ["broker"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        second = process.stdout.readline()
        assert first.startswith("embedded broker: Tansu at 127.0.0.1:"), \
            first + process.stderr.read()
        address, _, pid = first.split(" at ", 1)[1].partition(" (pid ")
        broker_pid = int(pid.rstrip(")\n"))
        assert second == (f"transport URL:   notifbus+kafka://{address}/"
                          f"?broker_quirks=tansu\n")
        host, port = address.rsplit(":", 1)
        socket.create_connection((host, int(port)), 2).close()
        process.send_signal(sig)
        assert process.wait(15) == 0
        assert process.stderr.read() == f"stopped on {sig.name}\n"
        assert _gone(broker_pid)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_embedded_broker_dies_with_the_process_that_started_it():
    script = ("import time\n"
              "from notifbus.embedded import EmbeddedBroker\n"
              "broker = EmbeddedBroker().start()\n"
              "print(broker.process.pid, flush=True)\n"
              "time.sleep(300)\n")
    owner = subprocess.Popen([sys.executable, "-c", script],
                             stdout=subprocess.PIPE, env=dict(os.environ))
    try:
        pid = int(owner.stdout.readline())
        assert not _gone(pid)
    finally:
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.wait()
    assert _wait_gone(pid), f"the embedded broker {pid} outlived the " \
                            f"process that started it"
