"""``notifbus bench --broker apache-kafka-cluster``: the scaling mode on
three Apache Kafka nodes the bench starts itself, with tiny counts.

Correctness only: the topics have three replicas, the groups publish and
read everything, and the pools' lag comes from the broker; never how fast
anything was. About 30 s, most of it starting the three nodes: it runs
with the other three-node tests (``make cluster-faults``), not in
``make test``, whose budget is 20 minutes.
"""

import contextlib
import io
import json

import pytest

from notifbus.bench import scaling
from notifbus.cmd import main

pytestmark = pytest.mark.functional

COUNT = 300


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "cluster.json"
    seen = {}
    lag = scaling.group_lag

    def spied(bootstrap, group, topic, timeout_s=10.0):
        # while the cluster is up: the topic's replicas, and the lag of a
        # group that read nothing
        import kafka

        admin = kafka.KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            (found,) = admin.describe_topics([topic])
        finally:
            admin.close()
        seen["replicas"] = {len(p["replica_nodes"])
                            for p in found["partitions"]}
        seen["unread"] = lag(bootstrap, f"{group}-never", topic)
        return lag(bootstrap, group, topic, timeout_s)

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scaling, "group_lag", spied)
        with contextlib.redirect_stdout(stdout), \
                contextlib.redirect_stderr(stderr):
            code = main.main([
                "bench", "--broker", "apache-kafka-cluster",
                "--producers", "2", "--consumers", "2", "--count",
                str(COUNT), "--rows", "notifbus-confirmed",
                "--consume-wait", "15", "--json", str(out)])
    assert out.exists(), (code, stdout.getvalue(), stderr.getvalue()[-3000:])
    return {"code": code, "stdout": stdout.getvalue(), "seen": seen,
            "report": json.loads(out.read_text())}


def test_scaling_on_three_nodes(cluster_run):
    assert cluster_run["code"] == 0, cluster_run["stdout"]
    report = cluster_run["report"]
    assert report["settings"]["broker"] == "apache-kafka-cluster"
    assert report["settings"]["replication_factor"] == 3
    assert len(report["settings"]["kafka"].split(",")) == 3
    assert report["machine"]["versions"]["apache-kafka"]
    assert cluster_run["seen"]["replicas"] == {3}
    (producers,) = report["scaling"]["producers"]
    assert producers["processes"] == 2 and producers["error"] is None
    assert producers["sent"] == COUNT and producers["unacked"] == 0
    (pool,) = report["scaling"]["consumers"]
    assert pool["error"] is None and pool["consumers"] == 2
    assert pool["unique"] == COUNT and pool["lost"] == 0
    # everything read was committed; a group that read nothing lags by
    # the whole topic (the count and the fill's warm-up notification)
    assert pool["lag"] == 0
    assert cluster_run["seen"]["unread"] == COUNT + 1
    assert pool["drain_s"] > 0
    assert "3 nodes, 3 replicas" in cluster_run["stdout"]
    assert " lag " in cluster_run["stdout"]
