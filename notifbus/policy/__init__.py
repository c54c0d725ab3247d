"""Policies: how the bus batches, retries and partitions.

Each policy is a pure object: it holds settings and counters and answers
questions about them, but performs no I/O. Backends and the bus consult
them, which keeps these decisions easy to test on their own.
"""

from notifbus.policy.batching import BatchPolicy
from notifbus.policy.partitioning import Partitioner
from notifbus.policy.partitioning import from_name as partitioner_from_name
from notifbus.policy.retry import RetryPolicy

__all__ = [
    "BatchPolicy",
    "Partitioner",
    "RetryPolicy",
    "partitioner_from_name",
]
