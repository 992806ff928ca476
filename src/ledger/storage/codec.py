"""How events are stored: the orjson transcoder, the mapper between an event and its row (pinned
topic, name and version in the row's own columns, the rest as JSON), and a log row back to an event.

The topics stored with events (`ledger.Created`, ...) are pinned strings of the domain, never module
paths, so moving code orphans no history. eventsourcing names the transcoder and mapper by topic in
its environment: `ENVIRONMENT_TOPICS` gives today's, and every topic they had before stays registered.
"""

from __future__ import annotations

from typing import Any

import orjson
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, Transcoder
from eventsourcing.utils import register_topic

from ..domain.operation import EVENTS_BY_TOPIC, OperationEvent, event_from_json


class OrjsonTranscoder(Transcoder):
    """Event payloads are plain JSON (the SPEC event JSON), so orjson alone encodes them."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class EventMapper(Mapper[str]):
    """Stores each event as its pinned topic and its event JSON less type, name and version.

    Those three live in the row itself (topic, originator_id, originator_version), so a payload can
    never disagree with the row that holds it without the hash chain noticing.
    """

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: OperationEvent = domain_event
        payload = dict(event.body())  # in the body's order: occurredAt, the fields, recordedAt
        del payload["type"], payload["name"], payload["version"]
        payload["hash"] = event.hash
        return StoredEvent(event.name, event.originator_version, event.TOPIC, self.transcoder.encode(payload))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return decode_event(stored_event, self.transcoder)


ENVIRONMENT_TOPICS = {
    "TRANSCODER_TOPIC": f"{__name__}:OrjsonTranscoder",
    "MAPPER_TOPIC": f"{__name__}:EventMapper",
}
# Where these classes were before: an environment that still names them finds them here.
for _old in ("ledger.store",):
    register_topic(f"{_old}:OrjsonTranscoder", OrjsonTranscoder)
    register_topic(f"{_old}:EventMapper", EventMapper)


def payload_bytes(state: object) -> bytes:
    """A stored payload as bytes, however the row holds it: a payload edited by hand in SQLite's
    shell is TEXT, and PostgreSQL may hand back a memoryview."""
    if isinstance(state, str):
        return state.encode("utf-8", errors="surrogateescape")
    if isinstance(state, (bytes, bytearray, memoryview)):
        return bytes(state)
    return repr(state).encode()


def decode_event(stored: StoredEvent, transcoder: Transcoder) -> OperationEvent:
    name, version = str(stored.originator_id), stored.originator_version
    try:
        event_type = EVENTS_BY_TOPIC[stored.topic]
        return event_from_json(name, version, event_type, transcoder.decode(stored.state))
    except Exception as e:  # whatever is wrong with stored bytes, it is the same finding
        msg = f"stored event {name!r} version {version} (topic {stored.topic!r}) cannot be decoded: {e}"
        raise MapperDeserialisationError(msg) from e


def decode_stored(name: str, version: int, topic: str, state: object, transcoder: Transcoder) -> OperationEvent:
    """The event a log row's columns hold, however the row holds its payload."""
    return decode_event(StoredEvent(name, version, topic, payload_bytes(state)), transcoder)
