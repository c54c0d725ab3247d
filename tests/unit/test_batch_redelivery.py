"""A batch listener's requeued notifications come back one per batch.

oslo's batch dispatcher requeues every notification of a batch when its
endpoint returns REQUEUE (ceilometer's agent with ``batch_size`` above 1
and ``ack_on_event_error = false``). Redelivered together, the good ones
would fail again with the bad one until all were dead-lettered; each is
redelivered in a batch of its own instead.
"""

import threading
import time
import uuid

import oslo_messaging
from oslo_config import cfg

from notifbus import opts
from notifbus.backends.memory import backend as memory

WAIT = 10.0


class RequeueBatchesWithBad:
    """Batch endpoint: REQUEUE for a batch holding ``"bad"``, else record
    its payloads."""

    def __init__(self):
        self.batches, self.handled = [], []
        self.lock = threading.Lock()

    def info(self, messages):
        payloads = [m["payload"] for m in messages]
        with self.lock:
            self.batches.append(payloads)
            if "bad" in payloads:
                return oslo_messaging.NotificationResult.REQUEUE
            self.handled.extend(payloads)
        return None


def test_a_requeued_batch_comes_back_one_notification_per_batch():
    conf = cfg.ConfigOpts()
    conf([])
    opts.register_opts(conf)
    for key, value in dict(poll_timeout_ms=20, num_partitions=1,
                           close_timeout_ms=500, requeue_backoff_ms=50,
                           max_redeliveries=2).items():
        conf.set_override(key, value, group=opts.GROUP)
    name = f"batchredeliver-{uuid.uuid4().hex[:8]}"
    transport = oslo_messaging.get_notification_transport(
        conf, url=f"notifbus+memory://{name}/")
    endpoint = RequeueBatchesWithBad()
    notifier = oslo_messaging.Notifier(
        transport, publisher_id="volume.host1", driver="messagingv2",
        topics=["notif"])
    for payload in ["bad", 1, 2, 3, 4]:
        notifier.info({}, "volume.create.end", payload)
    server = oslo_messaging.get_batch_notification_listener(
        transport, [oslo_messaging.Target(topic="notif")], [endpoint],
        executor="threading", allow_requeue=True, batch_size=5,
        batch_timeout=1)
    server.start()
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and (
                len(endpoint.handled) < 4
                or not memory.cluster(name).records("notif.info.dead")):
            time.sleep(0.01)
        time.sleep(0.3)  # nothing more may come
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        dead = memory.cluster(name).records("notif.info.dead")
        memory.reset(name)
    # the first batch failed whole; then each came back alone: the good
    # ones were handled once, the bad one failed twice more
    assert endpoint.batches[0] == ["bad", 1, 2, 3, 4]
    assert all(len(batch) == 1 for batch in endpoint.batches[1:])
    assert sorted(endpoint.handled) == [1, 2, 3, 4]
    assert [b for b in endpoint.batches if b == ["bad"]] == [["bad"]] * 2
    assert len(dead) == 1
