"""The rows of the bench: what each one publishes through.

A row is a kind (below) and a number of senders. Its name is the kind,
followed by ``-x<senders>`` when there is more than one sender:
``notifbus-confirmed-x64``. In ``--rows``, a kind without the suffix takes
``--senders`` senders.
"""

import dataclasses
import re
from typing import Optional

#: how a row's notifications are read back: ``drain`` starts the listeners
#: after publishing (the broker keeps what was sent), ``live`` starts them
#: first and publishes again (oslo's kafka consumer starts at the latest
#: offset), ``None`` does not read back.
DRAIN, LIVE = "drain", "live"


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str
    summary: str
    kafka: bool = False
    rabbit: bool = False
    consume: Optional[str] = None
    #: publishes through an oslo ``Notifier``, as the ``noop`` row does:
    #: the driver's share of its CPU is its own minus the ``noop`` row's
    notifier: bool = True


KINDS = {kind.name: kind for kind in (
    Kind("noop", "oslo Notifier with the noop driver: what oslo itself "
         "costs, the ceiling of any oslo driver"),
    Kind("oslo-kafka", "oslo's builtin kafka:// driver (confluent-kafka): "
         "a send returns before the broker acknowledges; flushed at the "
         "end; read back by its plain and batch listeners (on Apache "
         "Kafka: its consumer receives nothing on Tansu)",
         kafka=True, consume=LIVE),
    Kind("oslo-rabbit", "oslo's rabbit:// driver on RabbitMQ: a send "
         "returns once written to the socket (no publisher confirms)",
         rabbit=True, consume=DRAIN),
    Kind("notifbus-confirmed", "notifbus+kafka, delivery=confirmed: a send "
         "returns once the broker acknowledged it", kafka=True,
         consume=DRAIN),
    Kind("notifbus-buffered", "notifbus+kafka, delivery=buffered: a send "
         "returns once buffered; timed until every notification is "
         "acknowledged", kafka=True, consume=DRAIN),
    Kind("notifbus-rdkafka-confirmed", "notifbus+rdkafka (librdkafka), "
         "delivery=confirmed: a send returns once the broker acknowledged "
         "it", kafka=True, consume=DRAIN),
    Kind("notifbus-rdkafka-buffered", "notifbus+rdkafka (librdkafka), "
         "delivery=buffered: a send returns once buffered; timed until "
         "every notification is acknowledged", kafka=True, consume=DRAIN),
    Kind("kafka-python-ack", "kafka-python producer, waiting for each "
         "acknowledgement (send().get())", kafka=True,
         notifier=False),
    Kind("kafka-python-buffered", "kafka-python producer, send without "
         "waiting, flush at the end", kafka=True, notifier=False),
    Kind("confluent-ack", "confluent-kafka producer, waiting for each "
         "delivery callback", kafka=True, notifier=False),
    Kind("confluent-buffered", "confluent-kafka producer, produce and "
         "poll(0), flush at the end", kafka=True, notifier=False),
)}

#: the kind whose publish rate the others are compared with
REFERENCE_KIND = "oslo-kafka"
#: the kind whose CPU per notification is oslo's ``Notifier`` alone
NOOP_KIND = "noop"

_NAME = re.compile(r"^(?P<kind>[a-z-]+?)(?:-x(?P<senders>\d+))?$")


@dataclasses.dataclass(frozen=True)
class Row:
    kind: str
    senders: int = 1

    @property
    def name(self):
        return (self.kind if self.senders == 1
                else f"{self.kind}-x{self.senders}")

    @property
    def spec(self):
        return KINDS[self.kind]


def default_rows(senders=1):
    """The rows run without ``--rows``: every kind with ``senders``
    senders, plus notifbus confirmed with 1 and 64 senders, and notifbus
    buffered with 1, on kafka-python and on librdkafka."""
    rows = [Row("noop", senders), Row("oslo-kafka", senders),
            Row("oslo-rabbit", senders), Row("notifbus-confirmed", 1),
            Row("notifbus-confirmed", senders),
            Row("notifbus-confirmed", 64), Row("notifbus-buffered", 1),
            Row("notifbus-rdkafka-confirmed", 1),
            Row("notifbus-rdkafka-confirmed", senders),
            Row("notifbus-rdkafka-confirmed", 64),
            Row("notifbus-rdkafka-buffered", 1)]
    rows += [Row(kind, senders) for kind in (
        "kafka-python-ack", "kafka-python-buffered", "confluent-ack",
        "confluent-buffered")]
    return _unique(rows)


def parse_rows(text, senders=1):
    """Rows from a comma-separated ``--rows`` value.

    :raises ValueError: a name is not a kind, with the valid kinds.
    """
    rows = []
    for name in (part.strip() for part in text.split(",")):
        if not name:
            continue
        match = _NAME.match(name)
        if not match or match.group("kind") not in KINDS:
            raise ValueError(
                f"unknown row {name!r}: use one of {', '.join(KINDS)}, "
                f"optionally followed by -x<senders>")
        count = int(match.group("senders") or senders)
        if count < 1:
            raise ValueError(f"row {name!r} needs at least one sender")
        rows.append(Row(match.group("kind"), count))
    if not rows:
        raise ValueError("--rows names no row")
    return _unique(rows)


def _unique(rows):
    seen, unique = set(), []
    for row in rows:
        if row not in seen:
            seen.add(row)
            unique.append(row)
    return unique
