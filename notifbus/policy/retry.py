"""How often and how patiently a failed operation is tried again.

:class:`RetryPolicy` follows oslo.messaging's ``retry`` contract: ``None``
or ``-1`` retries forever, ``0`` makes one attempt only, and ``N > 0``
allows at most ``N`` retries (``N + 1`` attempts). Waits between attempts
grow exponentially up to a cap, without jitter, so they are predictable.
"""

import time
from typing import Callable, Optional

import tenacity


def _default_sleep(seconds: float) -> None:
    # Looked up at call time so a monkey-patched (green) time.sleep is
    # used even when it was patched after this module was imported.
    time.sleep(seconds)


def _always(exc: BaseException) -> bool:
    return True


def _check_retries(retries):
    if retries is None:
        return None
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise ValueError(f"retry must be None or an integer, got {retries!r}")
    if retries == -1:
        return None
    if retries < 0:
        raise ValueError(
            "retry must be None or -1 (forever), 0 (no retry) or a "
            f"positive number of retries, got {retries!r}"
        )
    return retries


class RetryPolicy:
    """Limit and pacing of retries.

    ``retries`` is the number of retries allowed after the first attempt,
    ``None`` (or ``-1``) for no limit. ``backoff_ms`` is the wait after the
    first failure; each further failure doubles it, up to
    ``backoff_max_ms``. ``sleep`` is called with the wait in seconds; it
    defaults to :func:`time.sleep`, looked up at each call.
    """

    def __init__(
        self,
        retries: Optional[int],
        backoff_ms: float = 100,
        backoff_max_ms: float = 5000,
        sleep: Optional[Callable[[float], None]] = None,
    ):
        self._retries = _check_retries(retries)
        for field, value in (
            ("backoff_ms", backoff_ms),
            ("backoff_max_ms", backoff_max_ms),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{field} must be a number, got {value!r}")
            if not value >= 0:
                raise ValueError(f"{field} must be >= 0, got {value!r}")
        self.backoff_ms = backoff_ms
        self.backoff_max_ms = backoff_max_ms
        self._sleep = sleep if sleep is not None else _default_sleep

    @classmethod
    def from_oslo(
        cls, retry, backoff_ms=100, backoff_max_ms=5000, sleep=None
    ) -> "RetryPolicy":
        """Build a policy from oslo.messaging's ``retry`` argument.

        ``None`` or ``-1``: forever; ``0``: no retry; ``N > 0``: at most
        ``N`` retries. Any other value raises ``ValueError``.
        """
        return cls(
            retry,
            backoff_ms=backoff_ms,
            backoff_max_ms=backoff_max_ms,
            sleep=sleep,
        )

    @property
    def retries(self) -> Optional[int]:
        """Retries allowed after the first attempt; ``None`` for no limit."""
        return self._retries

    @property
    def forever(self) -> bool:
        """True when there is no limit on retries."""
        return self._retries is None

    def allows(self, attempts_made: int) -> bool:
        """May another attempt follow ``attempts_made`` failed attempts?"""
        if self.forever:
            return True
        return attempts_made <= self._retries

    def backoff_s(self, attempts_made: int) -> float:
        """Seconds to wait after ``attempts_made`` (>= 1) failed attempts.

        ``backoff_ms * 2 ** (attempts_made - 1)``, capped at
        ``backoff_max_ms``, converted to seconds.
        """
        if attempts_made < 1:
            raise ValueError(
                f"attempts_made must be >= 1, got {attempts_made!r}"
            )
        # Past 2**64 the cap has long been reached; avoid huge ints.
        exponent = min(attempts_made - 1, 64)
        wait_ms = min(self.backoff_ms * 2**exponent, self.backoff_max_ms)
        return wait_ms / 1000.0

    def call(self, fn, is_retriable=_always, on_retry=None):
        """Run ``fn()`` until it succeeds or this policy gives up.

        On an exception for which ``is_retriable(exc)`` is true, wait
        :meth:`backoff_s` and try again while :meth:`allows` does. A
        non-retriable exception, or the last one once retries are
        exhausted, is re-raised as is. Only :class:`Exception` subclasses
        are retried: ``KeyboardInterrupt``, ``SystemExit`` and the like
        propagate at once. ``on_retry(attempts_made, exc,
        wait_s)`` is called before each wait when given. Returns what
        ``fn`` returns.
        """
        # The first attempt runs outside tenacity: almost every call
        # succeeds at once, and a tenacity loop costs about as much as a
        # send in confirmed mode.
        try:
            return fn()
        except Exception as exc:
            if not is_retriable(exc) or not self.allows(1):
                raise
            first = exc
        wait_s = self.backoff_s(1)
        if on_retry is not None:
            on_retry(1, first, wait_s)
        self._sleep(wait_s)
        return self._retry(fn, is_retriable, on_retry)

    def _retry(self, fn, is_retriable, on_retry):
        """The attempts after a failed first one, numbered from 2."""
        if self.forever:
            stop = tenacity.stop_never
        else:
            stop = tenacity.stop_after_attempt(self._retries)

        def wait(state):
            return self.backoff_s(state.attempt_number + 1)

        before_sleep = None
        if on_retry is not None:

            def before_sleep(state):
                on_retry(
                    state.attempt_number + 1,
                    state.outcome.exception(),
                    state.next_action.sleep,
                )

        def retriable(exc):
            return isinstance(exc, Exception) and is_retriable(exc)

        retrying = tenacity.Retrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(retriable),
            sleep=self._sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)

    def __repr__(self):
        return (
            f"RetryPolicy(retries={self._retries!r}, "
            f"backoff_ms={self.backoff_ms!r}, "
            f"backoff_max_ms={self.backoff_max_ms!r})"
        )
