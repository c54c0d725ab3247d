"""The conformance kit's declarations: a backend names the features it
lacks (``unsupported``), and the tests that need one skip, saying so."""

import pytest

from notifbus.backends.memory.backend import MemoryBackend
from notifbus.testing import FEATURES, declared_unsupported, requires


class _Kit:
    def __init__(self, unsupported):
        self._unsupported = frozenset(unsupported)

    def unsupported(self):
        return self._unsupported

    def transport_url(self):
        return "notifbus+fake://127.0.0.1/"


@requires("replay")
def _needs_replay(kit):
    return "ran"


def test_a_test_needing_a_declared_feature_skips_naming_the_declaration():
    with pytest.raises(pytest.skip.Exception) as info:
        _needs_replay(_Kit({"replay", "seek"}))
    assert str(info.value.msg) == (
        "the fake backend declares ['replay'] unsupported (its "
        "Backend.unsupported)")


def test_a_test_runs_where_nothing_it_needs_is_declared():
    assert _needs_replay(_Kit({"seek"})) == "ran"
    assert _needs_replay.notifbus_requires == frozenset({"replay"})


def test_unknown_feature_names_are_refused():
    with pytest.raises(ValueError, match="unknown features"):
        requires("time-travel")

    class Odd:
        unsupported = frozenset({"partitions"})

    with pytest.raises(ValueError, match="not features of the contract"):
        declared_unsupported(Odd())


def test_builtin_backends_declare_nothing():
    assert declared_unsupported(MemoryBackend) == frozenset()
    assert set(FEATURES) == {"replay", "seek", "rebalance"}
