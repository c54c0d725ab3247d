"""Run each row in a child process, one after the other, within a time
limit, and collect their JSON results.

A child runs in a session of its own, so that a Ctrl-C at the terminal
reaches the bench only, which then stops the child (SIGTERM, then SIGKILL)
before it stops anything else. A row whose child fails, prints no result
or outlives ``row_timeout`` becomes a result with an ``error``: the bench
goes on with the next row.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import notifbus
from notifbus.bench import progress
from notifbus.bench.results import RowResult

#: seconds a row's child keeps for itself after its own deadline, to stop
#: its senders, close its clients and print its result
CLOSE_MARGIN_S = 15.0
TAIL_LINES = 30


def child_env():
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(
        notifbus.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


def row_spec(base, row, row_timeout):
    spec = dict(base)
    spec["row"] = {"name": row.name, "kind": row.kind,
                   "senders": row.senders, "kafka": row.spec.kafka,
                   "rabbit": row.spec.rabbit, "consume": row.spec.consume}
    spec["budget_s"] = max(row_timeout - CLOSE_MARGIN_S, row_timeout / 2)
    spec["topic"] = f"{base['run_id']}-{row.name}"
    return spec


def run_rows(rows, base, row_timeout, display, debug=False, repeat=1):
    """Results of ``rows`` (in order), each run by :func:`run_child`, as
    :class:`~notifbus.bench.results.RowResult` objects.

    With ``repeat`` > 1 the rows run ``repeat`` rounds, all of them in
    each round, so that a slow spell of the machine falls on every row;
    round ``n`` > 1 uses topics (and pools) named ``<topic>-<n>``. Each
    row's result is then :func:`median_run` of its runs.
    """
    runs = [[] for _ in rows]
    step = 0
    for round_number in range(1, repeat + 1):
        for index, row in enumerate(rows):
            step += 1
            display.row_started(step, row.name if repeat == 1 else
                                f"{row.name} (run {round_number}/{repeat})")
            spec = row_spec(base, row, row_timeout)
            if round_number > 1:
                spec["topic"] += f"-{round_number}"
            result = RowResult.from_json(run_child(
                spec, row_timeout, display, debug=debug))
            runs[index].append(result)
            display.row_finished(summary(result))
    if repeat == 1:
        return [found for found, in runs]
    return [median_run(found) for found in runs]


def median_run(results):
    """The run of median rate among ``results``, the runs of one row (the
    lower middle one of an even count), with ``runs_msgs_per_s`` set to
    the rate of each run, in run order. A row with a failed run is
    reported by that run (the first failed one): a failure is never
    hidden behind the rates of the others.
    """
    failed = [result for result in results if result.error]
    if failed:
        chosen = failed[0]
    else:
        rated = sorted(results, key=lambda result: result.msgs_per_s or 0.0)
        chosen = rated[(len(rated) - 1) // 2]
    chosen.runs_msgs_per_s = [result.msgs_per_s for result in results]
    if "runs_msgs_per_s" not in chosen.keys:
        chosen.keys.append("runs_msgs_per_s")
    return chosen


def summary(result):
    """One line of a :class:`~notifbus.bench.results.RowResult`: its rate
    and its error."""
    if result.msgs_per_s:
        text = f"{result.msgs_per_s:,.0f} msgs/s"
    else:
        text = "no rate"
    if result.error:
        text += f"; error: {result.error}"
    return text


class Child:
    """A row's process: its stdout (the result) and stderr (progress and
    the last lines of anything else) read by two threads."""

    def __init__(self, spec, display, debug=False, control=False):
        self.display = display
        self.debug = debug
        self.state = {}
        self.tail = collections.deque(maxlen=TAIL_LINES)
        self.stdout = []
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "notifbus.bench.worker",
             json.dumps(spec)],
            stdin=subprocess.PIPE if control else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=child_env(),
            start_new_session=True, text=True, errors="replace")
        self.readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True)]
        for reader in self.readers:
            reader.start()

    def _read_stderr(self):
        for line in self.process.stderr:
            state = progress.parse(line)
            if state is not None:
                self.state = state
                self.display.update(state)
                continue
            self.tail.append(line.rstrip("\n"))
            if self.debug:
                self.display.message(line.rstrip("\n"))

    def _read_stdout(self):
        self.stdout.append(self.process.stdout.read())

    def tell(self, word):
        """Write ``word`` as a line to the child's stdin (a child started
        with ``control=True`` waits for ``go``, and a listener for
        ``stop``); ``False`` when the child is gone."""
        try:
            self.process.stdin.write(word + "\n")
            self.process.stdin.flush()
            return True
        except (OSError, ValueError, AttributeError):
            return False

    def wait(self, timeout):
        """Return the exit code, or ``None`` after ``timeout`` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM its whole session, SIGKILL after 3 s."""
        if self.process.poll() is None:
            for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.process.pid, sig)
                except ProcessLookupError:
                    break
                if self.wait(grace) is not None:
                    break
        for reader in self.readers:
            reader.join(2.0)
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass

    def result(self, code, failed):
        """The child's JSON result (with ``wall_s``), or ``failed`` with
        an ``error`` saying why there is none."""
        output = "".join(self.stdout).strip()
        if code == 0 and output:
            try:
                result = json.loads(output.splitlines()[-1])
                result["wall_s"] = time.monotonic() - self.started
                return result
            except ValueError:
                pass
        last = " | ".join(line for line in list(self.tail)[-3:] if line)
        failed["error"] = (f"the row's process exited with code {code} "
                           f"and no result" + (f": {last}" if last else ""))
        return failed

    def where(self):
        state = self.state
        if not state.get("phase"):
            return "starting"
        if state.get("total"):
            return f"{state['phase']} at {state.get('done', 0)}/" \
                   f"{state['total']}"
        return state["phase"]


def run_child(spec, row_timeout, display, debug=False):
    """Run one row; always returns a result, with ``error`` set when the
    child failed, printed no result or was stopped at ``row_timeout``."""
    row = spec["row"]
    failed = {"row": row["name"], "kind": row["kind"],
              "senders": row["senders"], "green": bool(spec.get("green")),
              "count": spec["count"], "size": spec["size"], "sent": 0,
              "consume": None}
    child = Child(spec, display, debug=debug)
    try:
        code = child.wait(row_timeout)
        if code is None:
            where = child.where()
            child.stop()
            failed["error"] = (f"timed out after {row_timeout:.0f} s "
                               f"({where}); stopped")
            return failed
        for reader in child.readers:
            reader.join(5.0)
    finally:
        # on Ctrl-C or any error of our own: the child goes first
        child.stop()
    return child.result(code, failed)
