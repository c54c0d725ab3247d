"""``notifbus replay`` on NSQ says, in one line, that it cannot replay."""

from notifbus.cmd import main


def test_replay_is_refused_with_the_reason(nsqd, capsys):
    assert main.main(["replay", nsqd.url(), "events.info", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("notifbus replay: ")
    assert "cannot replay topics" in err and "nsqd keeps no log" in err
