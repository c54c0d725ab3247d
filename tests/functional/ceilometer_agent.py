"""Ceilometer's own notification agent on a notifbus transport.

:class:`CeilometerAgent` runs ``ceilometer-agent-notification`` from the
ceilometer virtual environment that ``make ceilometer`` creates
(``.cache/ceilometer-venv``, ``$NOTIFBUS_CEILOMETER_VENV`` names another)
as a subprocess, with a configuration of its own: no Keystone, file
publishers writing one JSON document a line (``samples.json``,
``events.json``), ``[notification] ack_on_event_error = false``, the
notification topic and the transport URL given. :func:`send_input` sends
issue 16's input through oslo.messaging's ``Notifier``: one
``volume.create.end`` whose ``size`` is ``"ten"``, then nine good
notifications (three each of ``compute.instance.create.end``,
``image.upload`` and ``volume.create.end``).

Run as a program it measures one backend with the default requeue
options (about a minute a backend)::

    python -m tests.functional.ceilometer_agent kafka|rdkafka|nats

starting Apache Kafka (``$NOTIFBUS_KAFKA_LIBS``) or nats-server itself.
"""

import datetime
import fnmatch
import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid

from tests import services

#: where ``make ceilometer`` installs ceilometer
DEFAULT_VENV = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), ".cache", "ceilometer-venv")

AGENT = "ceilometer-agent-notification"

#: samples ceilometer 27.0.0's meter definitions (meters.d/meters.yaml)
#: make of one good notification of each type of :func:`send_input`
SAMPLES_PER_NOTIFICATION = {
    # memory, vcpus, disk.root.size, disk.ephemeral.size,
    # compute.instance.booting.time
    "compute.instance.create.end": 5,
    "image.upload": 1,  # image.size
    "volume.create.end": 1,  # volume.size
}

#: ``[DEFAULT] default_log_levels`` of the agent: notifbus's requeue
#: WARNINGs and dead-letter ERRORs are what :meth:`requeue_log` reads
LOG_LEVELS = ("notifbus=INFO,kafka=WARNING,nats=WARNING,"
              "oslo_messaging=INFO,stevedore=WARNING")

_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \d+ (WARNING|ERROR) "
    r"notifbus\.\S+ .*requeued the notification")


def venv():
    """Directory of the ceilometer virtual environment."""
    return os.environ.get("NOTIFBUS_CEILOMETER_VENV", DEFAULT_VENV)


def missing():
    """Why the agent cannot run here, or ``None`` when it can."""
    if not os.access(os.path.join(venv(), "bin", AGENT), os.X_OK):
        return (f"ceilometer is not installed in {venv()}: run "
                f"'make ceilometer' (it creates that virtual environment "
                f"with ceilometer and this checkout)")
    return None


def require():
    """Fail the calling test in CI, skip it elsewhere, when ceilometer's
    virtual environment is missing."""
    import pytest

    reason = missing()
    if reason:
        if services.in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


class CeilometerAgent:
    """``ceilometer-agent-notification`` reading ``topic`` at
    ``transport_url``, with file publishers in a directory of its own.

    A context manager: entering starts the agent, leaving stops it (SIGTERM,
    then SIGKILL after ``stop_timeout`` seconds). ``workers``,
    ``batch_size`` and ``batch_timeout`` (seconds) are those of
    ``[notification]``. With ``event_types`` (a list), the agent loads
    only the entries of ceilometer's own event and meter definitions that
    apply to those types: compiling all of them takes it 20 s and more on
    a 2-CPU machine.
    """

    def __init__(self, transport_url, topic, workers=1, directory=None,
                 stop_timeout=10.0, event_types=None, batch_size=1,
                 batch_timeout=None):
        self.transport_url = transport_url
        self.topic = topic
        self.workers = workers
        self.batch = f"batch_size = {batch_size}\n" + (
            "" if batch_timeout is None
            else f"batch_timeout = {batch_timeout}\n")
        self.event_types = event_types
        self.stop_timeout = stop_timeout
        self._tmp = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="ceilometer-")
            directory = self._tmp.name
        self.directory = directory
        self.samples_path = os.path.join(directory, "samples.json")
        self.events_path = os.path.join(directory, "events.json")
        self.log_path = os.path.join(directory, "agent.log")
        self.config_path = os.path.join(directory, "ceilometer.conf")
        self.process = None

    def write_config(self):
        """Write ``ceilometer.conf`` and the two pipeline definitions."""
        pipeline = os.path.join(self.directory, "pipeline.yaml")
        event_pipeline = os.path.join(self.directory, "event_pipeline.yaml")
        with open(pipeline, "w") as f:
            f.write(textwrap.dedent(f"""\
                ---
                sources:
                  - name: meter_source
                    meters: ["*"]
                    sinks: [meter_sink]
                sinks:
                  - name: meter_sink
                    publishers: ["file://{self.samples_path}?json"]
                """))
        with open(event_pipeline, "w") as f:
            f.write(textwrap.dedent(f"""\
                ---
                sources:
                  - name: event_source
                    events: ["*"]
                    sinks: [event_sink]
                sinks:
                  - name: event_sink
                    publishers: ["file://{self.events_path}?json"]
                """))
        definitions = ""
        if self.event_types is not None:
            definitions = _write_definitions(self.directory,
                                             self.event_types)
        with open(self.config_path, "w") as f:
            f.write(textwrap.dedent(f"""\
                [DEFAULT]
                log_file = {self.log_path}
                debug = false
                default_log_levels = {LOG_LEVELS}
                pipeline_cfg_file = {pipeline}
                event_pipeline_cfg_file = {event_pipeline}

                [oslo_messaging_notifications]
                transport_url = {self.transport_url}
                topics = {self.topic}

                [notification]
                workers = {self.workers}
                ack_on_event_error = false
                """) + self.batch + definitions)

    def start(self):
        self.write_config()
        self.process = subprocess.Popen(
            [os.path.join(venv(), "bin", AGENT),
             "--config-file", self.config_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.directory, "stderr"), "w"),
            start_new_session=True)
        return self

    def stop(self):
        """Stop the agent and its workers; return its exit status."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.terminate()
        try:
            return self.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            return self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def log(self):
        """The agent's log so far (``""`` before it wrote one)."""
        for path in (self.log_path, os.path.join(self.directory, "stderr")):
            try:
                with open(path) as f:
                    yield from f
            except FileNotFoundError:
                pass

    def samples(self):
        """The samples written so far, as dicts."""
        return _json_lines(self.samples_path)

    def events(self):
        """The events written so far, as dicts."""
        return _json_lines(self.events_path)

    def requeue_log(self):
        """``(seconds, level, line)`` of notifbus's requeue WARNINGs and
        dead-letter ERRORs in the agent's log, ``seconds`` from the first
        of them."""
        found = []
        for line in self.log():
            match = _LOG_LINE.match(line)
            if match:
                at = datetime.datetime.strptime(
                    match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
                found.append((at, match.group(2), line.rstrip()))
        if not found:
            return []
        first = found[0][0]
        return [(round(at - first, 3), level, line)
                for at, level, line in found]


def _ceilometer_data(*path):
    """Path of a data file of the installed ceilometer package."""
    [found] = glob.glob(os.path.join(
        venv(), "lib", "python*", "site-packages", "ceilometer", *path))
    return found


def _matching(definitions, event_types, match):
    """The entries of ``definitions`` with an ``event_type`` pattern that
    ``match(event_type, pattern)`` finds one of ``event_types`` in."""
    kept = []
    for definition in definitions:
        patterns = definition["event_type"]
        if isinstance(patterns, str):
            patterns = [patterns]
        if any(match(t, p) for t in event_types for p in patterns):
            kept.append(definition)
    return kept


def _write_definitions(directory, event_types):
    """Write to ``directory`` the entries of ceilometer's event and meter
    definitions for ``event_types`` (matched as ceilometer does: shell
    patterns for events, regular expressions for meters); return the
    configuration that points the agent at them."""
    import yaml

    with open(_ceilometer_data("pipeline", "data",
                               "event_definitions.yaml")) as f:
        events = _matching(yaml.safe_load(f), event_types, fnmatch.fnmatch)
    with open(_ceilometer_data("data", "meters.d", "meters.yaml")) as f:
        meters = yaml.safe_load(f)
    meters["metric"] = _matching(
        meters["metric"], event_types,
        lambda t, p: re.compile(p).match(t) is not None)
    events_path = os.path.join(directory, "event_definitions.yaml")
    meters_dir = os.path.join(directory, "meters.d")
    os.makedirs(meters_dir, exist_ok=True)
    with open(events_path, "w") as f:
        yaml.safe_dump(events, f)
    with open(os.path.join(meters_dir, "meters.yaml"), "w") as f:
        yaml.safe_dump(meters, f)
    return (f"\n[event]\ndefinitions_cfg_file = {events_path}\n"
            f"\n[meter]\nmeter_definitions_dirs = {meters_dir}\n")


def _json_lines(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _payloads():
    """``(event_type, payload)`` of the input, bad notification first."""
    now = datetime.datetime(2026, 11, 30, 12, 0, 0)
    tenant, user = "p" + uuid.uuid4().hex[:8], "u" + uuid.uuid4().hex[:8]

    def volume(n, size):
        return {"volume_id": f"vol-{n}", "tenant_id": tenant,
                "user_id": user, "size": size, "status": "available",
                "display_name": f"vol-{n}", "availability_zone": "nova",
                "created_at": str(now), "host": "cinder1"}

    def instance(n):
        return {"instance_id": f"vm-{n}", "tenant_id": tenant,
                "user_id": user, "memory_mb": 512, "vcpus": 1,
                "root_gb": 1, "ephemeral_gb": 0, "disk_gb": 1,
                "instance_type": "m1.tiny", "instance_type_id": "1",
                "display_name": f"vm-{n}", "host": "compute1",
                "state": "active", "created_at": str(now),
                "launched_at": str(now + datetime.timedelta(seconds=12)),
                "image_meta": {}, "metadata": {}}

    def image(n):
        return {"id": f"img-{n}", "owner": tenant, "size": 1024 * (n + 1),
                "name": f"img-{n}", "status": "active"}

    yield "volume.create.end", volume("bad", "ten")
    for n in range(3):
        yield "compute.instance.create.end", instance(n)
        yield "image.upload", image(n)
        yield "volume.create.end", volume(n, n + 1)


def send_input(transport_url, topic):
    """Send issue 16's input 1 to ``topic`` through oslo.messaging; return
    the samples the good notifications make (21)."""
    import oslo_messaging
    from oslo_config import cfg

    conf = cfg.ConfigOpts()
    conf([], project="notifbus-ceilometer-input")
    transport = oslo_messaging.get_notification_transport(
        conf, url=transport_url)
    notifier = oslo_messaging.Notifier(
        transport, driver="messagingv2", topics=[topic],
        publisher_id="notifbus.test")
    expected = 0
    try:
        for n, (event_type, payload) in enumerate(_payloads()):
            notifier.info({}, event_type, payload)
            if n:
                expected += SAMPLES_PER_NOTIFICATION[event_type]
    finally:
        transport.cleanup()
    return expected


def dead_letters(transport_url, topic):
    """The records of ``<topic>.info.dead`` (``[]`` while it does not
    exist), read with notifbus's backend for ``transport_url``."""
    from oslo_config import cfg

    from notifbus import settings
    from notifbus.replay import Replay

    conf = cfg.ConfigOpts()
    conf([], project="notifbus-ceilometer-dead")
    backend, _ = settings.open_backend(conf, transport_url)
    try:
        return list(Replay(backend, f"{topic}.info.dead"))
    except Exception:  # noqa: BLE001 - the topic may not exist yet
        return []
    finally:
        backend.close()


def wait_for(condition, timeout, interval=0.2):
    """Call ``condition`` until it returns something true, at most
    ``timeout`` seconds; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def run(transport_url, timeout=120.0, settle=2.0, workers=1,
        all_definitions=True, batch_size=1, batch_timeout=None):
    """Start the agent on ``transport_url``, send the input, wait for the
    dead letter (at most ``timeout`` seconds) and ``settle`` seconds more;
    return a dict of what came out. Without ``all_definitions`` the agent
    loads only the event and meter definitions the input needs."""
    topic = "ceilo_" + uuid.uuid4().hex[:8]
    event_types = (None if all_definitions
                   else sorted(SAMPLES_PER_NOTIFICATION))
    with CeilometerAgent(transport_url, topic, workers=workers,
                         event_types=event_types, batch_size=batch_size,
                         batch_timeout=batch_timeout) as agent:
        started = time.monotonic()
        expected = send_input(transport_url, topic)
        dead = wait_for(lambda: dead_letters(transport_url, topic), timeout,
                        interval=0.5)
        time.sleep(settle)
        return {
            "topic": topic, "expected_samples": expected,
            "events": agent.events(), "samples": agent.samples(),
            "dead_letters": dead, "requeue_log": agent.requeue_log(),
            "seconds": round(time.monotonic() - started, 1),
            "running": agent.running(), "log": list(agent.log()),
        }


def _main(argv):
    import argparse
    import contextlib

    parser = argparse.ArgumentParser(prog="ceilometer_agent")
    parser.add_argument("backend", choices=("kafka", "rdkafka", "nats"))
    parser.add_argument("--query", default="",
                        help="more transport URL options, a=1&b=2")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--batch-timeout", type=int)
    parser.add_argument("--log", action="store_true",
                        help="print the agent's log")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.backend == "nats":
            from tests.functional import natsserver

            server = stack.enter_context(natsserver.NatsServer())
            url = natsserver.url(natsserver.unique_prefix("ceilo"),
                                 server.address)
            url += "&" if args.query else ""
        else:
            from notifbus.testing.kafka import KafkaCluster

            cluster = stack.enter_context(KafkaCluster())
            url = cluster.url(args.backend) + ("?" if args.query else "")
        url += args.query
        print("transport URL:", url)
        result = run(url, workers=args.workers, batch_size=args.batch_size,
                     batch_timeout=args.batch_timeout)
    print("events:       ", len(result["events"]))
    print("samples:      ", len(result["samples"]),
          f"(the good notifications make {result['expected_samples']})")
    print("dead letters: ", len(result["dead_letters"]))
    for record in result["dead_letters"]:
        print("  headers:", dict(record.headers))
    print("requeue log (s after the first requeue):")
    for at, level, _ in result["requeue_log"]:
        print(f"  {at:7.3f} {level}")
    names = {}
    for sample in result["samples"]:
        key = (sample["name"], sample["resource_id"])
        names[key] = names.get(key, 0) + 1
    print("samples by meter and resource:", sorted(names.items()))
    print("agent still running:", result["running"])
    if args.log:
        print("".join(result["log"]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
