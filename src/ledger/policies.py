"""The policies of a ledger: the IAM model (`domain/iam.py`) over their table (`storage/policies.py`).

Every change of a resource's policy is an event in a table of its own (`ledger_policy_events`: resource,
version, payload), hash-chained per resource as operation events are, so `audit` checks each change
and who made it. It is kept apart from the operations log so that log, its positions and its digest
stay exactly SPEC's. The `etag` of a policy derives from its latest change's hash: a `set` that names
an older etag is ABORTED (optimistic concurrency, as in IAM).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import datetime

import orjson
from eventsourcing.persistence import IntegrityError

from .audit import Finding
from .domain.chain import GENESIS, link
from .domain.errors import Code, LedgerError, invalid
from .domain.iam import (
    EMPTY_ETAG,
    ROLES,
    PolicyChange,
    covering,
    decode_change,
    etag_of,
    member_matches,
    next_change,
    parse_policy,
    render_policy,
    validate_resource,
)
from .domain.timestamps import Timestamp, format_timestamp, now, parse_timestamp
from .domain.values import JSONObject
from .storage.base import Database
from .storage.policies import PolicyRow, PolicyTable


class Policies:
    """The policies of one ledger, cached in memory.

    Changes made through this object are seen at once; changes made by another process are picked up
    within `refresh_seconds` (the cache rereads the table when its row count has moved).
    """

    def __init__(
        self, db: Database, setting_up: Callable[[], AbstractContextManager[None]], refresh_seconds: float = 1.0
    ) -> None:
        self.db = db
        self._setting_up = setting_up  # the backend's turn for making tables
        self.table = PolicyTable(db)
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._latest: dict[str, PolicyChange] = {}
        self._rows = -1
        self._checked = 0.0

    ready = False  # the table is known to exist

    def ensure(self) -> None:
        """Make the table, which the first write does: reads of a ledger without policies write nothing."""
        if self.ready:
            return
        with self._setting_up(), self.db.write() as cursor:
            self.table.create(cursor)
        self.ready = True

    # -- reads ----------------------------------------------------------------------------------

    def get(self, resource: str) -> JSONObject:
        """The policy set on exactly this resource (not inherited ones), with its etag."""
        change = self._current().get(validate_resource(resource))
        return render_policy(change.policy, etag_of(change.hash)) if change else {"etag": EMPTY_ETAG}

    def permissions(self, principal: str | None, resource: str) -> frozenset[str]:
        """Every permission the principal (None: anonymous) holds on the resource, inherited included."""
        latest = self._current()
        held: set[str] = set()
        for prefix in covering(resource):
            change = latest.get(prefix)
            for binding in change.policy.get("bindings", []) if change else ():
                if any(member_matches(m, principal) for m in binding["members"]):
                    held |= ROLES[binding["role"]]
        return frozenset(held)

    def history(self, resource: str) -> list[JSONObject]:
        resource = validate_resource(resource)
        with self.db.read() as cursor:
            if not self.table.exists(cursor):
                return []
            return [decode_change(*row).to_json() for row in self.table.history(cursor, resource)]

    # -- the one write --------------------------------------------------------------------------

    def set(
        self, resource: str, policy: object, *, principal: str, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record a new policy for the resource. An `etag` in the policy must be the current one."""
        self.ensure()
        resource = validate_resource(resource)
        stored = parse_policy(policy)
        given_etag = policy.get("etag") if isinstance(policy, dict) else None
        if given_etag is not None and not isinstance(given_etag, str):
            raise invalid("policy.etag", "must be a string (base64)")
        when: Timestamp = now() if occurred_at is None else parse_timestamp(occurred_at, "occurredAt")
        with self.db.write() as cursor:
            row = self.table.latest_locked(cursor, resource)
            previous = decode_change(*row) if row else None
            current_etag = etag_of(previous.hash) if previous else EMPTY_ETAG
            if given_etag not in (None, "", current_etag):
                raise LedgerError(
                    Code.ABORTED, f"policy.etag: {given_etag!r} is stale; the policy of {resource!r} has changed"
                )
            change = next_change(previous, resource, format_timestamp(when), principal, stored)
            payload = {k: v for k, v in change.body().items() if k not in ("resource", "version")}
            payload["hash"] = change.hash
            try:
                self.table.insert(cursor, resource, change.version, orjson.dumps(payload))
            except IntegrityError:  # a first policy for the resource, set by two writers at once
                raise LedgerError(Code.ABORTED, f"the policy of {resource!r} changed meanwhile; retry") from None
        with self._lock:  # two writers may get here in either order: the newer version wins
            kept = self._latest.get(resource)
            if kept is None or kept.version < change.version:
                self._latest[resource] = change
            self._rows = -1  # reread all at the next refresh: counting here could race with one
        return render_policy(change.policy, etag_of(change.hash))

    def audit(self) -> tuple[int, list[Finding]]:
        """`audit_policies` over every stored change; (0, []) for a ledger that never had a policy."""
        with self.db.snapshot() as cursor:
            if not self.table.exists(cursor):
                return 0, []
            return audit_policies(self.table.every(cursor))

    # -- the cache ------------------------------------------------------------------------------

    def _current(self) -> dict[str, PolicyChange]:
        with self._lock:
            if time.monotonic() - self._checked < self.refresh_seconds:
                return self._latest
            with self.db.read() as cursor:
                if not self.table.exists(cursor):  # no policy was ever set: nothing is granted
                    self._checked = time.monotonic()
                    return {}
                rows = self.table.count(cursor)
                if rows != self._rows:
                    self._latest = {row.resource: decode_change(*row) for row in self.table.every(cursor)}
                    self._rows = rows
            self._checked = time.monotonic()
            return self._latest


def audit_policies(rows: Iterable[PolicyRow]) -> tuple[int, list[Finding]]:
    """Check every policy change (rows in resource, version order): versions without gaps, payloads
    that decode, policies that parse, and the hash chain. Returns (changes checked, error findings of
    kind `policy-version`, `policy-decode` or `policy-chain`, named by resource)."""
    checked, findings = 0, []
    resource, previous_hash, expected_version = None, GENESIS, 1
    for row in rows:
        checked += 1
        if row.resource != resource:
            resource, previous_hash, expected_version = row.resource, GENESIS, 1
        where = f"policy change {row.version} of {row.resource!r}"
        if row.version != expected_version:
            findings.append(
                Finding("error", "policy-version", row.resource, None, f"{where}: expected version {expected_version}")
            )
        expected_version = int(row.version) + 1
        try:
            change = decode_change(*row)
            if parse_policy(change.policy) != change.policy:
                raise ValueError("the stored policy is not in its stored form")
        except (ValueError, KeyError, TypeError, LedgerError) as e:
            findings.append(Finding("error", "policy-decode", row.resource, None, f"{where} cannot be decoded: {e}"))
            previous_hash = ""
            continue
        if link(previous_hash, change.body()) != change.hash:
            findings.append(
                Finding(
                    "error",
                    "policy-chain",
                    row.resource,
                    None,
                    f"{where}: the hash does not match its content and chain",
                )
            )
        previous_hash = change.hash
    return checked, findings
