"""The idempotent producer of the Kafka backend's own record batches
(KIP-98).

The broker gives the writer a producer id and epoch (``InitProducerId``);
every record batch then carries them and the sequence number of its first
record, counted per partition from 0. The leader of a partition stores a
batch only when its sequence follows the last one it stored for that
producer, and answers a batch it has already stored (one of the last five)
with that batch's offset again, without storing it twice. The producer
state is in the log, so a new leader knows it after a failover.

The rules below are those of Kafka's own producer (``TransactionManager``
and ``Sender`` in the Java client):

- a batch's sequence is fixed when it is first encoded, and a resend sends
  the same bytes: a batch whose answer was lost (a leader killed after it
  wrote, a connection reset, a request that timed out) is sent again and
  stored once;
- a batch the broker refused before writing it (:data:`NOT_WRITTEN`, for
  example ``NOT_ENOUGH_REPLICAS``), or that never left the client, and
  never sent before with an unknown outcome, gives its sequence numbers
  back; any other error (``NOT_LEADER_OR_FOLLOWER`` included) leaves the
  outcome unknown, and the same bytes go again, to the new leader;
- ``OUT_OF_ORDER_SEQUENCE_NUMBER``, ``UNKNOWN_PRODUCER_ID`` and
  ``INVALID_PRODUCER_EPOCH`` say the broker lost or fenced this producer's
  state: the batch fails and the client starts again with a new producer
  id (:data:`FENCED`);
- a batch whose outcome is still unknown when the send's time is up fails,
  and the next send starts with a new producer id, since its sequence
  numbers can no longer be given to other records. If that batch was
  stored after all, the bus's retry stores it a second time: the one way
  left to a duplicate, and only after an outage longer than the send
  timeout.

A broker that has no ``InitProducerId`` (or answers it with an error that
says it cannot) gets batches without a producer id, as before, and the
writer says so once in the log.
"""

import collections
import logging
import threading

import kafka.errors as kerrors
from kafka.protocol.producer.transaction import InitProducerIdRequest

LOG = logging.getLogger(__name__)

#: error codes of a produce answer whose batch the broker did not write:
#: checks made before the append. Not NOT_LEADER_OR_FOLLOWER: a leader
#: that loses its leadership while a batch waits for its replicas answers
#: it, with the batch appended and perhaps replicated to the new leader;
#: giving its sequence numbers to other records would have them taken
#: for that batch's duplicates, and dropped (seen in a rolling restart)
NOT_WRITTEN = frozenset((
    2,   # CORRUPT_MESSAGE
    10,  # MESSAGE_TOO_LARGE
    17,  # INVALID_TOPIC_EXCEPTION
    18,  # RECORD_LIST_TOO_LARGE
    19,  # NOT_ENOUGH_REPLICAS (checked before the append)
    21,  # INVALID_REQUIRED_ACKS
    29,  # TOPIC_AUTHORIZATION_FAILED
    31,  # CLUSTER_AUTHORIZATION_FAILED
    32,  # INVALID_TIMESTAMP
    43,  # UNSUPPORTED_FOR_MESSAGE_FORMAT
    87,  # INVALID_RECORD
))
#: error codes that fence this producer id: start again with a new one
FENCED = frozenset((
    45,  # OUT_OF_ORDER_SEQUENCE_NUMBER
    47,  # INVALID_PRODUCER_EPOCH
    59,  # UNKNOWN_PRODUCER_ID
))
#: the batch is stored already: a success
DUPLICATE_SEQUENCE_NUMBER = 46

#: sequence numbers are int32 and wrap to 0 after the largest
SEQUENCE_LIMIT = 1 << 31


class Unsupported(Exception):
    """The broker cannot give producer ids."""


class ProducerState:
    """Producer id, epoch and next sequence number per partition of one
    writer. Not thread-safe: the writer holds :attr:`lock` for a whole
    send, so that one batch per partition is in flight at a time.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.producer_id = -1
        self.epoch = -1
        self._sequences = {}
        #: the next send must ask for a new producer id first
        self.stale = True
        #: ``{tp: Held}``: batches whose outcome was still unknown when
        #: their send ran out of time, for a retry of the same records
        self.held = {}

    def reserve(self, tp, count):
        """Sequence number of the first of ``count`` records of a new batch
        of partition ``tp``; the next batch's starts after them."""
        first = self._sequences.get(tp, 0)
        self._sequences[tp] = (first + count) % SEQUENCE_LIMIT
        return first

    def give_back(self, tp, first):
        """The batch that started at ``first`` was not written."""
        self._sequences[tp] = first

    def renew(self, producer_id, epoch):
        """A new producer id: sequences start again at 0, and no batch is
        held any more."""
        self.producer_id, self.epoch = producer_id, epoch
        self._sequences.clear()
        self.held.clear()
        self.stale = False


class Held(collections.namedtuple("Held", "records encoded first")):
    """A partition's batch whose outcome stayed unknown (it may be stored)
    when its send ran out of time: its records (the objects themselves),
    the encoded bytes and the sequence number of its first record. A retry
    of the same records sends the same bytes again, which the broker
    stores once; new sequence numbers (or a new producer id) would store
    them twice if the first send was stored after all."""

    def matches(self, records):
        """Whether ``records`` are this batch's, the same objects in the
        same order."""
        return len(records) == len(self.records) and all(
            a is b for a, b in zip(records, self.records))


def init_producer_id_request():
    """An ``InitProducerId`` request for a non-transactional producer."""
    return InitProducerIdRequest(
        transactional_id=None, transaction_timeout_ms=0, producer_id=-1,
        producer_epoch=-1, min_version=0, max_version=4)


def producer_id_from(response):
    """``(producer_id, epoch)`` from an ``InitProducerId`` answer.

    :raises Unsupported: the broker cannot give producer ids.
    :raises KafkaError: another error; the next send asks again.
    """
    code = response.error_code
    if code == 0:
        return response.producer_id, response.producer_epoch
    error = kerrors.for_code(code)
    if issubclass(error, (kerrors.UnsupportedVersionError,
                          kerrors.ClusterAuthorizationFailedError)):
        raise Unsupported(error.__name__)
    raise error()


def unsupported(exc):
    """Whether ``exc``, raised for an ``InitProducerId`` request, says the
    broker does not speak that API."""
    return isinstance(exc, (Unsupported, kerrors.UnsupportedVersionError,
                            kerrors.IncompatibleBrokerVersion))
