import logging

from notifbus.deferred_log import DeferredLog


def test_records_are_logged_by_the_flush_oldest_first(caplog):
    deferred = DeferredLog()
    deferred.note(logging.WARNING, "first %s", 1)
    deferred.note(logging.ERROR, "second %s", 2)
    assert caplog.records == []
    with caplog.at_level(logging.DEBUG, logger="t"):
        deferred.flush(logging.getLogger("t"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "first 1"), (logging.ERROR, "second 2")]
    caplog.clear()
    deferred.flush(logging.getLogger("t"))
    assert caplog.records == []


def test_only_the_newest_records_are_kept(caplog):
    deferred = DeferredLog(maxlen=2)
    for n in range(5):
        deferred.note(logging.WARNING, "n=%d", n)
    with caplog.at_level(logging.DEBUG, logger="t"):
        deferred.flush(logging.getLogger("t"))
    assert [r.getMessage() for r in caplog.records] == ["n=3", "n=4"]
