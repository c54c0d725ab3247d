"""One row of the bench, in a child process of its own.

Run as ``python -m notifbus.bench.worker '<JSON spec>'`` by
:mod:`notifbus.bench.runner`. The process publishes (and, for the rows
that can, reads back), then writes one JSON result to its standard output;
everything else it or its libraries print goes to stderr, along with the
progress lines. With ``"green": true`` the process is monkey-patched by
eventlet before anything else is imported, and its senders are
greenthreads.

A process per row keeps the rows apart: each has its own peak RSS, its
own interpreter state (eventlet's patching, clients' threads and caches),
and one that hangs or crashes is killed without taking the others along.
"""

import json
import os
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    if spec.get("green"):
        import eventlet

        eventlet.monkey_patch()
    result_stream = _divert_stdout()
    _die_with_parent()
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    logging.basicConfig(level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from notifbus.bench import progress

    reporter = progress.Reporter().start()
    result = _runner(spec.get("mode"))(spec, reporter)
    result_stream.write(json.dumps(result) + "\n")
    result_stream.flush()
    sys.stderr.flush()
    # client threads (kafka-python, librdkafka) must not hold up the exit
    os._exit(0)


def _runner(mode):
    """What runs a child of ``mode``: a row (no mode), a memory run or a
    member of a scaling group."""
    if mode in ("memory-long", "memory-stall"):
        from notifbus.bench import memory

        return memory.run
    if mode in ("produce", "consume"):
        from notifbus.bench import scaling

        return scaling.run_member
    from notifbus.bench import rowrun

    return rowrun.run


def _divert_stdout():
    """The real stdout, for the result; fd 1 now writes to stderr, so
    that nothing else printed can corrupt the JSON."""
    result = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return result


def _die_with_parent():
    """Ask Linux to SIGTERM this process when the bench dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:
            os._exit(1)
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    main()
