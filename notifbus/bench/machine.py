"""The machine and software a bench run ran on, for its report."""

import importlib.metadata
import os
import platform
import subprocess
import time
from typing import Any, Dict, Optional

#: distributions whose versions a report gives
DISTRIBUTIONS = ("notifbus", "oslo.messaging", "kafka-python",
                 "confluent-kafka", "eventlet", "orjson")


def describe(broker_version: Optional[str] = None) -> Dict[str, Any]:
    """The machine: ``cpus`` (``os.cpu_count()``), ``usable_cpus`` (this
    process's affinity), ``cpu_model``, ``memory_mb`` (total RAM, MiB),
    ``system``, ``kernel``, ``python``, ``time`` (local, ISO 8601),
    ``versions`` (``{distribution: version}``, ``None`` when not
    installed; ``librdkafka`` and ``apache-kafka``, the broker the bench
    started, when known) and ``commit``, the git commit of the notifbus
    checkout the bench runs from (see :func:`commit`)."""
    versions = {name: _version(name) for name in DISTRIBUTIONS}
    try:
        import confluent_kafka

        versions["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        versions["librdkafka"] = None
    if broker_version:
        versions["apache-kafka"] = broker_version
    return {"cpus": os.cpu_count(), "usable_cpus": usable_cpus(),
            "cpu_model": cpu_model(), "memory_mb": memory_mb(),
            "system": f"{platform.system()} {platform.machine()}",
            "kernel": platform.release(),
            "python": platform.python_version(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": versions, "commit": commit()}


def usable_cpus() -> Optional[int]:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def cpu_model(path: str = "/proc/cpuinfo") -> Optional[str]:
    """The first ``model name`` of ``/proc/cpuinfo``, else
    ``platform.processor()``; ``None`` when neither says."""
    try:
        with open(path) as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def memory_mb(path: str = "/proc/meminfo") -> Optional[int]:
    """``MemTotal`` of ``/proc/meminfo``, in MiB; ``None`` without it."""
    try:
        with open(path) as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def commit() -> Optional[str]:
    """The commit of the git checkout notifbus is imported from, with
    ``+changes`` after it when tracked files differ from it; ``None``
    outside a checkout."""
    import notifbus

    root = os.path.dirname(os.path.dirname(os.path.abspath(
        notifbus.__file__)))
    found = _git(root, "rev-parse", "HEAD")
    if not found:
        return None
    changed = _git(root, "status", "--porcelain", "--untracked-files=no")
    return found + ("+changes" if changed else "")


def _git(root: str, *args: str) -> Optional[str]:
    """What ``git -C root args`` prints, stripped; ``None`` if it fails."""
    try:
        done = subprocess.run(["git", "-C", root, *args],
                              capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
