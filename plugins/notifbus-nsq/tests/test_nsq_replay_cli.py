"""``notifbus replay`` on NSQ says, in one line, that it cannot replay,
and exits with status 2 (nothing to retry: the broker keeps no log)."""

from notifbus.cmd import main


def test_replay_is_refused_with_the_reason(nsqd, capsys):
    assert main.main(["replay", nsqd.url(), "events.info", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("notifbus replay: ")
    assert "cannot replay topics" in err and "nsqd keeps no log" in err
