"""How pending records are grouped into batches.

A :class:`BatchPolicy` only answers questions about sizes and times; the
bus that owns the queue decides when to ask.
"""

import dataclasses
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    """Limits on one batch and how long to wait for it to fill.

    ``max_records`` and ``max_bytes`` must be at least 1 and
    ``linger_ms`` at least 0; anything else raises ``ValueError``.
    A record larger than ``max_bytes`` is still sent, alone.
    """

    max_records: int = 500
    max_bytes: int = 1048576
    linger_ms: float = 0.0

    def __post_init__(self):
        for field in ("max_records", "max_bytes"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{field} must be >= 1, got {value!r}")
        linger = self.linger_ms
        if isinstance(linger, bool) or not isinstance(linger, (int, float)):
            raise ValueError(f"linger_ms must be a number, got {linger!r}")
        if not linger >= 0:
            raise ValueError(f"linger_ms must be >= 0, got {linger!r}")

    @property
    def linger_s(self) -> float:
        """``linger_ms`` in seconds."""
        return self.linger_ms / 1000.0

    def take(self, sizes: Sequence[int]) -> int:
        """How many pending records go into the next batch.

        ``sizes`` are the sizes in bytes of the pending records, oldest
        first. The answer is the length of the longest prefix with at
        most ``max_records`` records and at most ``max_bytes`` bytes, but
        always at least 1 when ``sizes`` is non-empty (a record larger
        than ``max_bytes`` travels alone); 0 for an empty ``sizes``.
        """
        total = 0
        count = 0
        for size in sizes:
            if count >= self.max_records:
                break
            total += size
            if total > self.max_bytes and count > 0:
                break
            count += 1
        return count

    def is_full(self, count: int, nbytes: int) -> bool:
        """True when a batch of ``count`` records, ``nbytes`` bytes, is full.

        That is, when ``count >= max_records`` or ``nbytes >= max_bytes``.
        """
        return count >= self.max_records or nbytes >= self.max_bytes

    def should_wait(self, count: int, nbytes: int, waited_s: float) -> bool:
        """True while a leader should keep waiting for more records.

        The batch is not full and ``waited_s`` is less than ``linger_s``.
        """
        return not self.is_full(count, nbytes) and waited_s < self.linger_s
