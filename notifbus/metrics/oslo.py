"""notifbus's metrics to oslo.metrics, the way oslo.messaging sends its
own RPC metrics.

oslo.messaging sends each RPC metric as a JSON datagram (an
``oslo_metrics.message_type.Metric``) to the Unix socket of the
``oslo-metrics`` collector, which exposes them to Prometheus. notifbus
follows the same switch and settings, those of ``[oslo_messaging_metrics]``
(``metrics_enabled``, ``metrics_socket_file``, ``metrics_process_name``,
added as the ``process`` label), so one setting turns on both: a
notification transport lives inside oslo.messaging, and its metrics go
where oslo.messaging's go.

Rather than one datagram per notification, a thread sends, every
``[notifbus] metrics_push_interval_s``, what changed: counters as ``inc``
by their increase, histograms as ``observe`` of their new bucket counts
(``{"buckets": [...], "sum": s}``, one count per bucket, ``+Inf`` last),
the lag gauge as ``observe`` of its value. The stock collector knows only
the metrics of its own module (``oslo_messaging``) and has no action that
sets a gauge: run it with notifbus's definitions added,
``python -m notifbus.metrics.oslo_collector`` (same options as
``oslo-metrics``), which understands all three.
"""

import json
import logging
import socket
import threading

from notifbus import metrics

LOG = logging.getLogger(__name__)

#: The ``module`` of notifbus's oslo.metrics messages.
MODULE = "notifbus"

_LOCK = threading.Lock()
_PUSHER = None


def messages(previous, current, process):
    """The oslo.metrics messages (``dict``, the JSON of an
    ``oslo_metrics.message_type.Metric``) that take a collector from the
    snapshot ``previous`` to ``current`` (both from
    :func:`notifbus.metrics.collect`; ``previous`` may be ``None``)."""
    before = {f.metric.name: f.samples for f in previous or ()}
    found = []
    for family in current:
        metric, old = family.metric, before.get(family.metric.name, {})
        for values, value in family.samples.items():
            action = _action(metric.kind, old.get(values), value)
            if action is None:
                continue
            labels = {name: "" if v is None else str(v)
                      for name, v in zip(metric.labels, values)}
            labels["process"] = process
            found.append({"module": MODULE, "name": metric.name,
                          "action": action, "labels": labels})
    return found


def _action(kind, old, new):
    if kind == "counter":
        delta = new - (old or 0)
        return {"action": "inc", "value": delta} if delta > 0 else None
    if kind == "gauge":
        return None if new == old else {"action": "observe", "value": new}
    old_counts = old.counts if old is not None else [0] * len(new.counts)
    counts = [n - o for n, o in zip(new.counts, old_counts)]
    if not any(counts):
        return None
    return {"action": "observe", "value": {
        "buckets": counts,
        "sum": new.sum - (old.sum if old is not None else 0.0)}}


class Pusher:
    """Sends the changes of :func:`notifbus.metrics.collect` to the
    oslo.metrics socket every ``interval_s`` seconds, on a daemon thread.
    A collector that is not there is logged once (a WARNING), until it is
    there again."""

    def __init__(self, socket_file, process, interval_s):
        self.socket_file = socket_file
        self.process = process
        self.interval_s = interval_s
        self._previous = None
        self._failing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="notifbus-oslo-metrics")
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.interval_s):
            self.push()

    def push(self):
        """Send what changed since the last push that reached the
        collector."""
        current = metrics.collect()
        found = messages(self._previous, current, self.process)
        try:
            self._send(found)
        except OSError as exc:
            if not self._failing:
                self._failing = True
                LOG.warning("notifbus: cannot send metrics to oslo.metrics "
                            "at %s: %s; is its collector running? (notifbus "
                            "keeps the changes for the next try)",
                            self.socket_file, exc)
            return
        if self._failing:
            self._failing = False
            LOG.info("notifbus: sending metrics to oslo.metrics at %s "
                     "again", self.socket_file)
        self._previous = current

    def _send(self, found):
        # a collector that goes away in the middle of a push gets the
        # messages it had again at the next one (counts a little high)
        if not found:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self.socket_file)
            for message in found:
                sock.send(json.dumps(message).encode())

    def stop(self):
        self._stop.set()


def start(socket_file, process, interval_s):
    """The process' :class:`Pusher`, started on the first call."""
    global _PUSHER
    metrics.enable()
    with _LOCK:
        if _PUSHER is None:
            _PUSHER = Pusher(socket_file, process, interval_s)
        return _PUSHER
