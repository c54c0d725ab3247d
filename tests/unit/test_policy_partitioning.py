import collections
import random
import threading

import pytest

from notifbus.policy import Partitioner, partitioner_from_name
from notifbus.policy.partitioning import (
    NAMES,
    KeyHash,
    RoundRobin,
    Sticky,
    from_name,
    kafka_partition,
    murmur2,
    to_positive,
)

# From Kafka's UtilsTest.testMurmur2 (values computed by the Java client).
JAVA_MURMUR2 = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]

# Partitions over 1000 partitions, as the Java client computes them (from
# kafka-python's Java compatibility test).
JAVA_PARTITIONS_1000 = [
    (b"", 681),
    (b"a", 524),
    (b"ab", 434),
    (b"abc", 107),
    (b"123456789", 566),
    (b"\x00 ", 742),
]


@pytest.mark.parametrize("key, expected", JAVA_MURMUR2)
def test_murmur2_matches_java(key, expected):
    assert murmur2(key) == expected


@pytest.mark.parametrize("key, expected", JAVA_PARTITIONS_1000)
def test_kafka_partition_matches_java(key, expected):
    assert kafka_partition(key, 1000) == expected


def test_murmur2_is_signed_32_bit():
    values = [murmur2(bytes([i]) * i) for i in range(200)]
    assert all(-(2**31) <= v < 2**31 for v in values)
    assert any(v < 0 for v in values)


def test_murmur2_accepts_bytearray_and_memoryview():
    assert murmur2(bytearray(b"foobar")) == -790332482
    assert murmur2(memoryview(b"foobar")) == -790332482


def test_to_positive():
    assert to_positive(0) == 0
    assert to_positive(5) == 5
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-(2**31)) == 0
    assert to_positive(-973932308) == -973932308 & 0x7FFFFFFF


def test_murmur2_agrees_with_kafka_python():
    default = pytest.importorskip("kafka.partitioner.default")
    rng = random.Random(1234)
    for _ in range(500):
        key = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
        theirs = default.murmur2(key) & 0xFFFFFFFF
        ours = murmur2(key) & 0xFFFFFFFF
        assert ours == theirs, key
        for n in (1, 3, 12, 1000):
            assert kafka_partition(key, n) == (theirs & 0x7FFFFFFF) % n


def test_kafka_partition_rejects_no_partitions():
    with pytest.raises(ValueError, match="num_partitions"):
        kafka_partition(b"a", 0)


# Partitioner objects


def test_names_and_from_name():
    assert NAMES == ("round_robin", "key_hash", "sticky")
    for name in NAMES:
        partitioner = from_name(name)
        assert isinstance(partitioner, Partitioner)
        assert partitioner.name == name
    assert isinstance(from_name("round_robin"), RoundRobin)
    assert isinstance(from_name("key_hash"), KeyHash)
    assert isinstance(from_name("sticky"), Sticky)
    assert partitioner_from_name is from_name


def test_from_name_returns_fresh_instances():
    assert from_name("round_robin") is not from_name("round_robin")


@pytest.mark.parametrize("name", ["random", "", "ROUND_ROBIN", None])
def test_from_name_unknown(name):
    with pytest.raises(ValueError) as info:
        from_name(name)
    message = str(info.value)
    for valid in NAMES:
        assert valid in message


def test_partitioner_is_abstract():
    with pytest.raises(TypeError):
        Partitioner()


@pytest.mark.parametrize("name", NAMES)
def test_partitioners_reject_no_partitions(name):
    with pytest.raises(ValueError, match="num_partitions"):
        from_name(name).partition("t", None, 0)


@pytest.mark.parametrize("name", NAMES)
def test_partitions_in_range(name):
    partitioner = from_name(name)
    for i in range(100):
        n = 1 + i % 7
        key = None if i % 2 else str(i).encode()
        assert 0 <= partitioner.partition("t", key, n) < n
        if i % 5 == 0:
            partitioner.new_batch()


def test_round_robin_cycles():
    rr = RoundRobin()
    got = [rr.partition("t", None, 3) for _ in range(7)]
    assert got == [0, 1, 2, 0, 1, 2, 0]


def test_round_robin_ignores_key():
    rr = RoundRobin()
    got = [rr.partition("t", b"same", 3) for _ in range(3)]
    assert got == [0, 1, 2]


def test_round_robin_spreads_evenly():
    rr = RoundRobin()
    counts = collections.Counter(
        rr.partition("t", None, 5) for _ in range(500)
    )
    assert counts == {p: 100 for p in range(5)}


def test_round_robin_topics_are_independent():
    rr = RoundRobin()
    a = []
    b = []
    for _ in range(4):
        a.append(rr.partition("a", None, 4))
        b.append(rr.partition("b", None, 4))
        b.append(rr.partition("b", None, 4))
    assert a == [0, 1, 2, 3]
    assert b == [0, 1, 2, 3, 0, 1, 2, 3]


def test_round_robin_is_thread_safe():
    rr = RoundRobin()
    n_threads = 8
    per_thread = 2000
    n = 4
    results = [[] for _ in range(n_threads)]
    start = threading.Barrier(n_threads)

    def work(out):
        start.wait()
        for _ in range(per_thread):
            out.append(rr.partition("t", None, n))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = collections.Counter(p for out in results for p in out)
    assert counts == {p: n_threads * per_thread // n for p in range(n)}


def test_key_hash_uses_kafka_partition():
    kh = KeyHash()
    for key, expected in JAVA_PARTITIONS_1000:
        assert kh.partition("t", key, 1000) == expected
        assert kh.partition("other", key, 1000) == expected


def test_key_hash_same_key_same_partition():
    kh = KeyHash()
    got = {kh.partition("t", b"instance-42", 12) for _ in range(20)}
    assert len(got) == 1


def test_key_hash_without_key_is_round_robin():
    kh = KeyHash()
    got = [kh.partition("t", None, 3) for _ in range(6)]
    assert got == [0, 1, 2, 0, 1, 2]


def test_key_hash_empty_key_is_hashed():
    kh = KeyHash()
    assert kh.partition("t", b"", 1000) == 681
    assert kh.partition("t", b"", 1000) == 681


def test_sticky_same_partition_within_a_batch():
    sticky = Sticky()
    got = {sticky.partition("t", None, 6) for _ in range(50)}
    assert len(got) == 1


def test_sticky_ignores_key():
    sticky = Sticky()
    got = {sticky.partition("t", bytes([i]), 6) for i in range(50)}
    assert len(got) == 1


def test_sticky_moves_after_new_batch():
    sticky = Sticky(rng=random.Random(0))
    first = sticky.partition("t", None, 6)
    sticky.new_batch()
    second = sticky.partition("t", None, 6)
    assert second == (first + 1) % 6
    assert sticky.partition("t", None, 6) == second


def test_sticky_several_new_batch_calls_move_once():
    sticky = Sticky()
    first = sticky.partition("t", None, 6)
    sticky.new_batch()
    sticky.new_batch()
    assert sticky.partition("t", None, 6) == (first + 1) % 6


def test_sticky_spreads_across_batches():
    sticky = Sticky()
    counts = collections.Counter()
    for _ in range(40):
        for _ in range(10):
            counts[sticky.partition("t", None, 4)] += 1
        sticky.new_batch()
    assert counts == {p: 100 for p in range(4)}


def test_sticky_topics_are_independent():
    sticky = Sticky(rng=random.Random(7))
    a1 = sticky.partition("a", None, 5)
    b1 = sticky.partition("b", None, 5)
    for _ in range(10):
        assert sticky.partition("a", None, 5) == a1
    sticky.new_batch()
    # "b" is not used in this batch; it moves on once when next used.
    assert sticky.partition("a", None, 5) == (a1 + 1) % 5
    sticky.new_batch()
    assert sticky.partition("b", None, 5) == (b1 + 1) % 5


def test_sticky_start_is_reproducible_with_rng():
    first = [
        Sticky(rng=random.Random(3)).partition(t, None, 100) for t in "abc"
    ]
    again = [
        Sticky(rng=random.Random(3)).partition(t, None, 100) for t in "abc"
    ]
    assert first == again


def test_sticky_handles_fewer_partitions():
    sticky = Sticky(rng=random.Random(0))
    # Find a start past the new partition count.
    while sticky.partition("t", None, 10) < 5:
        sticky.new_batch()
    shrunk = sticky.partition("t", None, 3)
    assert 0 <= shrunk < 3
    # Still sticky within the batch after the change.
    assert sticky.partition("t", None, 3) == shrunk
    sticky.new_batch()
    assert sticky.partition("t", None, 3) == (shrunk + 1) % 3


def test_sticky_handles_more_partitions():
    sticky = Sticky()
    seen = set()
    sticky.partition("t", None, 2)
    for _ in range(8):
        sticky.new_batch()
        seen.add(sticky.partition("t", None, 8))
    assert seen == set(range(8))


def test_new_batch_is_harmless_for_others():
    for partitioner in (RoundRobin(), KeyHash()):
        partitioner.new_batch()
        assert partitioner.partition("t", None, 2) == 0
