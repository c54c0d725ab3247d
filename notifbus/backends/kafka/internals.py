"""kafka-python's private attributes that the ``kafka`` backend uses, in
one place.

kafka-python has no public API for what these do: replace a group
leader's metadata snapshot (:mod:`~notifbus.backends.kafka.assignor`,
:mod:`~notifbus.backends.kafka.consumer`), drop a
record batch that cannot be read, read a consumer's positions without a
request, wake a blocked poll, reach the producer's network client for
produce requests of notifbus's own (:mod:`~notifbus.backends.kafka.produce`).
Every such access goes through a function here, which names the attribute,
so that a kafka-python upgrade is checked in one module.

At import, the installed kafka-python must be in :data:`TESTED` (the range
of the ``kafka`` extra) and have the methods named in :data:`METHODS`;
otherwise importing the backend raises :class:`ImportError` naming the
version found and the fix, which the backend loader reports as
:class:`~notifbus.errors.BackendUnavailable`. Instance attributes, which a
class cannot show, are read with a fallback: a missing one turns the
feature off (each function says how), never fails a send or a poll.
"""

import kafka
from kafka.coordinator.consumer import ConsumerCoordinator
from kafka.producer.kafka import KafkaProducer
from kafka.producer.sender import Sender
from packaging.specifiers import SpecifierSet
from packaging.version import Version

#: kafka-python versions these accesses were written and tested for: the
#: range of the ``kafka`` extra in ``setup.cfg``.
TESTED_RANGE = ">=3.0.0,<4.0.0"
TESTED = SpecifierSet(TESTED_RANGE)

#: ``(class, method)`` pairs that must exist in the installed kafka-python.
METHODS = (
    (ConsumerCoordinator, "_perform_assignment"),
    (ConsumerCoordinator, "_build_metadata_snapshot"),
    (ConsumerCoordinator, "coordinator_unknown"),
    (KafkaProducer, "_wait_on_metadata"),
    (Sender, "wakeup"),
)


def check(version=kafka.__version__, methods=METHODS):
    """Refuse a kafka-python these accesses were not written for.

    :raises ImportError: ``version`` is outside :data:`TESTED`, or a
        method of ``methods`` is missing; the message names both and the
        fix.
    """
    if Version(version) not in TESTED:
        raise ImportError(
            f"notifbus's kafka backend needs kafka-python{TESTED_RANGE}, and "
            f"kafka-python {version} is installed; install a tested "
            f"version: pip install 'kafka-python{TESTED_RANGE}' (or use the "
            f"rdkafka backend, notifbus+rdkafka://)")
    missing = [f"{cls.__name__}.{name}" for cls, name in methods
               if not callable(getattr(cls, name, None))]
    if missing:
        raise ImportError(
            f"kafka-python {version} lacks {', '.join(missing)}, which "
            f"notifbus's kafka backend uses; install a tested version: "
            f"pip install 'kafka-python{TESTED_RANGE}'")


check()


# -- consumer --------------------------------------------------------------

def coordinator(consumer):
    """``consumer._coordinator``: the group coordinator of a
    ``KafkaConsumer``, or ``None``."""
    return getattr(consumer, "_coordinator", None)


def coordinator_unknown(consumer):
    """Whether the consumer has no group coordinator now; ``None`` when it
    cannot tell (no coordinator object)."""
    found = coordinator(consumer)
    return None if found is None else found.coordinator_unknown()


def group_stable(consumer):
    """Whether the consumer's group is stable (joined and synced), from
    ``consumer._coordinator.stable()``; ``False`` when unknown."""
    stable = getattr(coordinator(consumer), "stable", None)
    return bool(stable and stable())


def replace_metadata_snapshot(consumer, build):
    """Make the group leader build its metadata snapshot with
    ``build(subscription, cluster)`` (``_build_metadata_snapshot``). Does
    nothing without a coordinator."""
    found = coordinator(consumer)
    if found is not None:
        found._build_metadata_snapshot = build


def wrap_perform_assignment(consumer, wrap):
    """Replace the leader's ``_perform_assignment`` with
    ``wrap(original, coordinator)``, which returns the new method; returns
    ``False`` (nothing replaced) without the coordinator attributes the
    wrapper uses (:func:`set_snapshots`, :func:`group_subscription`)."""
    found = coordinator(consumer)
    if found is None or not all(
            hasattr(found, name) for name in (
                "_assignment_snapshot", "_metadata_snapshot",
                "_subscription")):
        return False
    found._perform_assignment = wrap(found._perform_assignment, found)
    return True


def group_subscription(coordinator):
    """The topics of every member of the group, as the leader knows them
    (``_subscription.group_subscription()``)."""
    return coordinator._subscription.group_subscription()


def set_snapshots(coordinator, snapshot):
    """Take ``snapshot`` (``{topic: set of partitions}``) as the leader's
    metadata and assignment snapshots, which kafka-python compares with
    the metadata to decide whether to rebalance again."""
    coordinator._metadata_snapshot = snapshot
    coordinator._assignment_snapshot = dict(snapshot)


def partition_states(consumer):
    """``{TopicPartition: state}`` of the assigned partitions, each state
    with ``position`` and ``highwater`` as of the last fetch
    (``_subscription.assignment``); ``{}`` when unknown."""
    return dict(getattr(getattr(consumer, "_subscription", None),
                        "assignment", None) or {})


def take_unreadable_batch(consumer):
    """The record batch kafka-python's fetcher failed to read and would
    read again at each poll (``_fetcher._next_partition_records``),
    removed from the fetcher; ``None`` when there is none."""
    fetcher = getattr(consumer, "_fetcher", None)
    pending = getattr(fetcher, "_next_partition_records", None)
    if not pending:
        return None
    fetcher._next_partition_records = None
    return pending


def wake_poll(consumer):
    """Make a ``KafkaConsumer.poll`` blocked in the network client return
    (``_client.wakeup()``)."""
    consumer._client.wakeup()


# -- producer --------------------------------------------------------------

def producer_client(producer):
    """The network client of a ``KafkaProducer``'s sender thread
    (``_sender._client``), on whose connections notifbus sends produce
    requests with SASL."""
    return producer._sender._client


def client_network(client):
    """The selector loop of a network client (``_net``)."""
    return client._net


def producer_metadata(producer):
    """The producer's cluster metadata (``_metadata``)."""
    return producer._metadata


def wait_on_metadata(producer, topic, timeout_ms):
    """Block until the producer knows ``topic``'s partitions, at most
    ``timeout_ms`` (``_wait_on_metadata``).

    :raises kafka.errors.KafkaTimeoutError: not within ``timeout_ms``.
    """
    return producer._wait_on_metadata(topic, timeout_ms)


def wake_sender(producer):
    """Wake the producer's sender thread, for example to send a metadata
    request at once (``_sender.wakeup()``); does nothing without one."""
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.wakeup()
