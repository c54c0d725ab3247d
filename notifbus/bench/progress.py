"""Progress of the rows: the child reports it on stderr, the parent shows it.

The child writes lines ``@notifbus-bench {"phase": ..., "done": ...,
"total": ...}`` to its stderr; the parent turns them into one status line
on a terminal (rewritten in place), or into one line per phase otherwise.
"""

import json
import sys
import threading
import time

MARK = "@notifbus-bench "


def parse(line):
    """The progress dict of a child's stderr line, or ``None``."""
    if not line.startswith(MARK):
        return None
    try:
        return json.loads(line[len(MARK):])
    except ValueError:
        return None


class Reporter:
    """Child side: the current phase and how far it is, written to
    ``stream`` when it changes, at most every ``interval_s``."""

    def __init__(self, stream=None, interval_s=0.25):
        self.stream = stream or sys.stderr
        self.interval_s = interval_s
        self._phase = None
        self._total = 0
        self._done = lambda: 0
        self._last = None
        self._lock = threading.Lock()

    def phase(self, name, total=0, done=None):
        with self._lock:
            self._phase, self._total = name, total
            self._done = done or (lambda: 0)
        self.emit()

    def progress(self, done):
        """Set the function that tells how far the phase is."""
        with self._lock:
            self._done = done
        self.emit()

    def emit(self):
        with self._lock:
            state = {"phase": self._phase, "done": self._done(),
                     "total": self._total}
            if state == self._last:
                return
            self._last = state
            self.stream.write(MARK + json.dumps(state) + "\n")
            self.stream.flush()

    def start(self):
        """Report in the background (a daemon thread, or a greenthread in
        a monkey-patched process)."""
        def loop():
            while True:
                time.sleep(self.interval_s)
                self.emit()

        threading.Thread(target=loop, daemon=True,
                         name="bench-progress").start()
        return self


class Display:
    """Parent side: which row runs, its phase and how far it is."""

    def __init__(self, rows, stream=None):
        self.rows = rows
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._row = None
        self._index = 0
        self._phase = None
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def row_started(self, index, name):
        with self._lock:
            self._row, self._index, self._phase = name, index, None
            self._started = time.monotonic()
            self._show("starting", newline=not self.tty)

    def update(self, state):
        with self._lock:
            phase = state.get("phase")
            text = phase or ""
            if state.get("total"):
                share = 100.0 * state.get("done", 0) / state["total"]
                text += f" {state.get('done', 0)}/{state['total']} " \
                        f"({share:.0f}%)"
            if self.tty:
                self._show(text)
            elif phase != self._phase:
                self._show(phase, newline=True)
            self._phase = phase

    def row_finished(self, summary):
        with self._lock:
            self._show(summary, newline=True)

    def message(self, text):
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def _show(self, text, newline=False):
        elapsed = time.monotonic() - self._started
        line = (f"[{self._index}/{self.rows}] {self._row}: {text} "
                f"({elapsed:.1f} s)")
        if self.tty:
            self.stream.write("\r\x1b[K" + line + ("\n" if newline else ""))
        elif newline:
            self.stream.write(line + "\n")
        self.stream.flush()
