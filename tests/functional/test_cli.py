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
from tests.processes import gone

NOTIFBUS = [sys.executable, "-m", "notifbus.cmd.main"]


def notifbus_command(*args, timeout=60):
    return subprocess.run(NOTIFBUS + list(args), capture_output=True,
                          text=True, timeout=timeout)


def _wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return gone(pid)


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
    (["spool", "list", "--bogus"], "notifbus spool list"),
    (["--bogus", "broker"], "notifbus broker"),
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
        assert gone(broker_pid)
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
        assert not gone(pid)
    finally:
        owner.kill()  # SIGKILL: no atexit, no finally
        owner.wait()
    assert _wait_gone(pid), f"the embedded broker {pid} outlived the " \
                            f"process that started it"


# --config-file and --config-dir: the service's configuration


def _spool(directory, count):
    from notifbus import spool as spool_files
    from notifbus.record import Record

    spool = spool_files.Spool(str(directory))
    spool.write([Record(topic="t.info", value=b"{}") for _ in range(count)])
    spool.close()


def _conf(tmp_path, text, name="service.conf"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def memory_url():
    from notifbus.backends.memory import backend as memory

    name = f"cli-{os.getpid()}-{time.monotonic_ns()}"
    yield f"notifbus+memory://{name}/"
    memory.reset(name)


def test_spool_list_reads_spool_dir_of_the_config_file(tmp_path, capsys):
    spool_dir = tmp_path / "spool"
    _spool(spool_dir, 3)
    conf = _conf(tmp_path, f"[notifbus]\nspool_dir = {spool_dir}\n")
    assert main.main(["spool", "list", "--config-file", conf]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "total: 3"
    assert str(spool_dir) in out


def test_spool_list_reads_spool_dir_of_the_configured_url(tmp_path,
                                                          capsys):
    spool_dir = tmp_path / "spool"
    _spool(spool_dir, 2)
    (tmp_path / "conf.d").mkdir()
    _conf(tmp_path / "conf.d",
          f"[oslo_messaging_notifications]\ntransport_url = "
          f"notifbus+memory://x/?spool_dir={spool_dir}\n"
          f"[notifbus]\nspool_dir = {tmp_path}\n", name="10-notif.conf")
    assert main.main(["spool", "list", "--config-dir",
                      str(tmp_path / "conf.d")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "total: 2"


@pytest.mark.parametrize("how", ["argument", "config"])
def test_a_missing_spool_dir_is_an_error_naming_it(tmp_path, capsys, how):
    missing = str(tmp_path / "nope")
    argv = ["spool", "list"]
    if how == "argument":
        argv += ["--spool-dir", missing]
    else:
        argv += ["--config-file",
                 _conf(tmp_path, f"[notifbus]\nspool_dir = {missing}\n")]
    assert main.main(argv) == 2
    captured = capsys.readouterr()
    assert "total" not in captured.out
    assert captured.err.startswith(
        f"notifbus spool list: spool directory {missing!r} does not exist")


def test_a_missing_config_file_is_status_2(tmp_path, capsys):
    missing = str(tmp_path / "nope.conf")
    assert main.main(["spool", "list", "--config-file", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notifbus spool list: ")
    assert missing in err
    assert len(err.splitlines()) == 1


def test_replay_and_flush_take_the_configured_transport_url(
        tmp_path, capsys, memory_url):
    spool_dir = tmp_path / "spool"
    _spool(spool_dir, 2)
    conf = _conf(tmp_path, f"[oslo_messaging_notifications]\n"
                           f"transport_url = {memory_url}\n"
                           f"[notifbus]\nspool_dir = {spool_dir}\n")
    assert main.main(["spool", "flush", "--config-file", conf]) == 0
    assert "re-sent 2, still spooled 0" in capsys.readouterr().out
    assert main.main(["replay", "t.info", "--quiet",
                      "--config-file", conf]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_demo_takes_the_configured_transport_url(tmp_path, capsys,
                                                 memory_url):
    conf = _conf(tmp_path, f"[oslo_messaging_notifications]\n"
                           f"transport_url = {memory_url}\n")
    assert main.main(["demo", "-n", "20", "--config-file", conf]) == 0
    out = capsys.readouterr().out
    assert f"transport URL:   {memory_url}" in out
    assert "embedded broker" not in out


def test_config_file_groups_apply_to_the_url_given(tmp_path, capsys,
                                                   memory_url):
    conf = _conf(tmp_path, "[notifbus_memory]\nauto_offset_reset = nowhere\n")
    assert main.main(["replay", memory_url, "t.info", "--config-file",
                      conf]) == 2
    err = capsys.readouterr().err
    assert err.startswith("notifbus replay: ")
    assert "nowhere" in err


def test_no_transport_url_anywhere_is_status_2(tmp_path, capsys):
    conf = _conf(tmp_path, "[notifbus]\n")
    assert main.main(["replay", "t.info", "--config-file", conf]) == 2
    assert capsys.readouterr().err == (
        "notifbus replay: no transport URL: give one as argument, or a "
        "--config-file that sets [oslo_messaging_notifications] "
        "transport_url\n")


def test_a_reader_that_goes_away_ends_the_command_quietly():
    process = subprocess.Popen(NOTIFBUS + ["bench", "--list-rows"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # before the command writes: | head -0
    assert process.wait(60) == 0
    assert process.stderr.read() == ""
