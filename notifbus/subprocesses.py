"""Child processes that never outlive the process that started them.

:func:`spawn` starts a program (a broker) in a process group of its own,
with ``PR_SET_PDEATHSIG`` (Linux): the kernel kills it with SIGKILL when
this process dies, however it dies (SIGKILL included), and an ``atexit``
hook kills the groups still running at interpreter exit.
"""

import atexit
import concurrent.futures
import ctypes
import os
import signal
import subprocess
import threading

_PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In the child before exec: a process group of its own, and SIGKILL
    when the parent dies."""
    os.setsid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_LIVE = set()
_LIVE_LOCK = threading.Lock()
# PR_SET_PDEATHSIG fires when the *thread* that forked the child ends: every
# child is forked by this one thread, which lives as long as the process
_SPAWNER = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="notifbus-spawner")


def spawn(command, **popen_args):
    """``subprocess.Popen(command)`` from the spawner thread, in a process
    group of its own that is killed with SIGKILL when this process dies."""
    process = _SPAWNER.submit(subprocess.Popen, command,
                              preexec_fn=die_with_parent,
                              **popen_args).result()
    with _LIVE_LOCK:
        _LIVE.add(process)
    return process


def forget(process):
    """``process`` was stopped: no need to kill it at exit."""
    with _LIVE_LOCK:
        _LIVE.discard(process)


@atexit.register
def _kill_leftovers():
    with _LIVE_LOCK:
        processes = list(_LIVE)
    for process in processes:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
