"""The replay baseline made of eventsourcing's own projection machinery: a `ProjectionRunner` subscribed
to the ledger's application, folding each event and upserting the operation's current JSON into a
table of its own, with eventsourcing's tracking row, one transaction an event (as the library does).

It keeps the operations view only (no versions view), so it does less than a replay. PostgreSQL only:
eventsourcing's SQLite recorder cannot subscribe.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from psycopg.sql import SQL, Identifier

from ledger.domain.operation import Operation, OperationEvent
from ledger.domain.rendering import render_operation
from ledger.storage.store import LedgerApplication


class OperationBodies(PostgresTrackingRecorder):
    """A tracking recorder that also keeps each operation's current JSON."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.table = SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier("es_runner_operations"))
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {0} (name text PRIMARY KEY, body bytea NOT NULL)").format(self.table)
        )

    def upsert(self, name: str, body: bytes, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(
                SQL("INSERT INTO {0} VALUES (%s, %s) ON CONFLICT (name) DO UPDATE SET body = excluded.body").format(
                    self.table
                ),
                (name, body),
            )
            self._insert_tracking(cursor, tracking)

    def reached(self, application_name: str, notification_id: int) -> bool:
        return bool(self.has_tracking_id(application_name, notification_id))


class OperationBodiesProjection(Projection[OperationBodies]):
    name = "es_runner"

    def __init__(self, view: OperationBodies) -> None:
        super().__init__(view)
        self.states: dict[str, Operation] = {}

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        event: OperationEvent = domain_event
        state = event.mutate(self.states.get(event.name))
        assert state is not None
        self.states[event.name] = state
        self.view.upsert(event.name, orjson.dumps(render_operation(state)), tracking)


def runner_rate(environment: dict[str, str], notification_id: int, count: int) -> dict[str, Any]:
    """Events/s of the runner from an empty view up to `notification_id` (the `count`th event)."""
    started = time.perf_counter()
    with ProjectionRunner(
        application_class=LedgerApplication,
        projection_class=OperationBodiesProjection,
        view_class=OperationBodies,
        env=environment,
    ) as runner:
        while not runner.view.reached(runner.app_name, notification_id):
            runner.run_forever(timeout=0.02)  # re-raises an error of the processing thread
        seconds = time.perf_counter() - started
    return {"events": count, "seconds": round(seconds, 1), "events_per_s": round(count / seconds)}
