"""The buffered delivery mode on the in-memory backend, with faults."""

import os
import threading
import time
import uuid

import oslo_messaging
import pytest
from oslo_config import cfg

from notifbus import spool as spool_files
from notifbus.backends.memory import backend as memory
from notifbus.cmd import main


@pytest.fixture
def name():
    name = f"buf-{uuid.uuid4().hex[:8]}"
    yield name
    memory.reset(name)


def _transport(name, spool_dir, **query):
    query = dict({"delivery": "buffered", "spool_dir": spool_dir,
                  "retry_backoff_ms": 10, "retry_backoff_max_ms": 50,
                  "close_timeout_ms": 1000, "send_timeout_ms": 500}, **query)
    params = "&".join(f"{k}={v}" for k, v in query.items())
    conf = cfg.ConfigOpts()
    conf([])
    return oslo_messaging.get_notification_transport(
        conf, url=f"notifbus+memory://{name}/?{params}")


def _send(transport, seq, retry=None):
    message = {"publisher_id": "buf", "event_type": "e", "payload": seq,
               "priority": "INFO"}
    transport._send_notification(oslo_messaging.Target(topic="t.info"), {},
                                 message, version=2.0, retry=retry)


def _stored(name):
    return len(memory.cluster(name).records("t.info"))


def _wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_send_returns_before_the_broker_acknowledged(faults, name, tmp_path):
    transport = _transport(name, tmp_path)
    faults.set_down(True)
    started = time.monotonic()
    for seq in range(5):
        _send(transport, seq)
    assert time.monotonic() - started < 0.5
    assert _stored(name) == 0
    faults.set_down(False)
    assert _wait(lambda: _stored(name) == 5)
    transport.cleanup()
    assert not spool_files.Spool(str(tmp_path)).pending_files()


def test_full_buffer_fails_with_retry_0_and_waits_with_retry_forever(
        faults, name, tmp_path):
    transport = _transport(name, tmp_path, max_buffer_records=3,
                           max_batch_records=1)
    faults.set_down(True)
    for seq in range(4):  # one in flight, three buffered
        _send(transport, seq)
    assert _wait(lambda: transport._driver.sender.buffered == 4)
    with pytest.raises(oslo_messaging.MessageDeliveryFailure,
                       match="buffer is full"):
        _send(transport, 99, retry=0)
    waiter = threading.Thread(target=_send, args=(transport, 4, None))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive(), "a full buffer must make retry=None wait"
    faults.set_down(False)
    waiter.join(5)
    assert not waiter.is_alive()
    assert _wait(lambda: _stored(name) == 5)
    transport.cleanup()


def test_exhausted_retries_are_spooled_and_resent_at_next_start(
        faults, name, tmp_path):
    transport = _transport(name, tmp_path, buffered_retry=1)
    faults.set_down(True)
    for seq in range(3):
        _send(transport, seq)
    counters = transport._driver.counters
    assert _wait(lambda: counters.spooled == 3)
    transport.cleanup()
    files = spool_files.Spool(str(tmp_path)).pending_files()
    assert sum(len(spool_files.read(f)) for f in files) == 3
    faults.set_down(False)
    again = _transport(name, tmp_path)
    assert _wait(lambda: _stored(name) == 3)
    again.cleanup()
    assert not spool_files.Spool(str(tmp_path)).pending_files()


def test_cleanup_is_bounded_and_spools_what_is_left(faults, name, tmp_path):
    transport = _transport(name, tmp_path)
    faults.set_down(True)
    for seq in range(20):
        _send(transport, seq)
    started = time.monotonic()
    transport.cleanup()
    assert time.monotonic() - started < 5
    files = spool_files.Spool(str(tmp_path)).pending_files()
    spooled = [r for f in files for r in spool_files.read(f)]
    assert len(spooled) == 20
    assert all(r.topic == "t.info" for r in spooled)


def test_spool_flush_command_resends_and_deletes(
        faults, name, tmp_path, capsys):
    transport = _transport(name, tmp_path)
    faults.set_down(True)
    for seq in range(4):
        _send(transport, seq)
    transport.cleanup()
    faults.set_down(False)
    assert main.main(["spool", "list", "--spool-dir", str(tmp_path)]) == 0
    assert "total: 4" in capsys.readouterr().out
    assert main.main(["spool", "flush", f"notifbus+memory://{name}/",
                      "--spool-dir", str(tmp_path)]) == 0
    assert "re-sent 4, still spooled 0" in capsys.readouterr().out
    assert _stored(name) == 4
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".spool")]


def test_torn_spool_line_is_skipped(tmp_path):
    path = tmp_path / "1-1-abc.spool"
    from notifbus.record import Record
    good = spool_files.encode(Record(topic="t", value=b"v"))
    path.write_text(good + "\n" + good[:10])
    assert [r.value for r in spool_files.read(str(path))] == [b"v"]


def test_a_live_process_spool_file_is_not_taken_by_another(tmp_path):
    from notifbus.record import Record
    writer = spool_files.Spool(str(tmp_path))
    writer.write([Record(topic="t", value=b"v")])
    other = spool_files.Spool(str(tmp_path))
    assert other.pending_files() == []  # locked by its writer
    writer.close()
    assert len(other.pending_files()) == 1


def test_spool_file_is_kept_until_its_records_are_delivered(
        faults, name, tmp_path):
    from notifbus.record import Record
    earlier = spool_files.Spool(str(tmp_path))
    earlier.write([Record(topic="t.info", value=b"x")])
    earlier.close()
    faults.set_down(True)
    transport = _transport(name, tmp_path)
    time.sleep(0.3)  # the resend is retrying against a down cluster
    assert len(spool_files.Spool(str(tmp_path)).pending_files()) == 1
    faults.set_down(False)
    assert _wait(lambda: _stored(name) == 1)
    assert _wait(lambda: not spool_files.Spool(
        str(tmp_path)).pending_files())
    transport.cleanup()
