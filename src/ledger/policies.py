"""Who may do what: IAM-style policies (`google.iam.v1.Policy` JSON) on resource-name prefixes.

A policy set on `projects/p` grants its roles on every name under it (`projects/p/operations/x`,
`projects/p/locations/l/operations/y`), segment by segment; the root resource `""` covers everything.

Every change of a resource's policy is an event in a table of its own (`ledger_policy_events`: resource,
version, payload), hash-chained per resource as operation events are, so `audit` checks each change
and who made it. It is kept apart from the operations log so that log, its positions and its digest
stay exactly SPEC's. The `etag` of a policy derives from its latest change's hash: a `set` that names
an older etag is ABORTED (optimistic concurrency, as in IAM).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import IntegrityError

from .audit import Finding
from .domain.chain import GENESIS, link
from .domain.errors import Code, LedgerError, invalid
from .domain.timestamps import Timestamp, format_timestamp, now, parse_timestamp
from .domain.values import JSONObject
from .storage.backend import payload_bytes
from .storage.database import ViewDatabase

TABLE = "ledger_policy_events"
EMPTY_ETAG = "ACAB"  # what IAM answers for a resource that never had a policy
ANONYMOUS_MEMBERS = frozenset({"allUsers"})

READ = frozenset({"ledger.operations.get", "ledger.operations.list"})
ROLES: dict[str, frozenset[str]] = {
    "roles/ledger.viewer": READ,
    "roles/ledger.canceller": READ | {"ledger.operations.cancel"},
    "roles/ledger.deleter": READ | {"ledger.operations.delete"},
    "roles/ledger.producer": frozenset({"ledger.events.write"}),
    "roles/ledger.policyAdmin": frozenset({"ledger.policies.get", "ledger.policies.set"}),
}
ROLES["roles/ledger.admin"] = frozenset().union(*ROLES.values())
PERMISSIONS = ROLES["roles/ledger.admin"]
_MEMBER_KINDS = ("user", "serviceAccount", "group", "domain", "principal")


@dataclass(frozen=True)
class PolicyChange:
    resource: str
    version: int
    occurred_at: str
    principal: str
    policy: JSONObject  # {"version"?, "bindings"?} as stored, without the etag
    hash: str

    def body(self) -> JSONObject:
        """What the hash covers: everything but the hash itself."""
        return {
            "resource": self.resource,
            "version": self.version,
            "occurredAt": self.occurred_at,
            "principal": self.principal,
            "policy": self.policy,
        }

    def to_json(self) -> JSONObject:
        return {"type": "PolicySet", **self.body(), "etag": etag_of(self.hash), "hash": self.hash}


def etag_of(hash_: str) -> str:
    return base64.b64encode(bytes.fromhex(hash_.removeprefix("sha256:"))[:9]).decode()


def validate_resource(resource: object, field: str = "resource") -> str:
    """A resource name: `""` (the root) or segments without empty parts, whitespace, `?` or `#`."""
    if not isinstance(resource, str):
        raise invalid(field, "must be a string")
    if len(resource.encode("utf-8", errors="surrogatepass")) > 1024:
        raise invalid(field, "longer than 1024 bytes")
    for segment in resource.split("/") if resource else ():
        if not segment:
            raise invalid(field, f"{resource!r} has an empty segment")
        if any(c.isspace() or c in "?#" or ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF for c in segment):
            raise invalid(field, f"{resource!r} holds a character a resource name may not hold")
    return resource


def covering(resource: str) -> list[str]:
    """The resource and every prefix of it, root first: a policy on any of them applies to it."""
    segments = resource.split("/") if resource else []
    return ["/".join(segments[:i]) for i in range(len(segments) + 1)]


def member_matches(member: str, principal: str | None) -> bool:
    if member == "allUsers":
        return True
    if principal is None:
        return False
    return member in ("allAuthenticatedUsers", principal)


def parse_policy(value: object, field: str = "policy") -> JSONObject:
    """A policy as given, checked and reduced to what is stored: `{"version": 1, "bindings": [...]}`."""
    if not isinstance(value, dict):
        raise invalid(field, "must be a google.iam.v1.Policy object")
    unknown = sorted(set(value) - {"version", "bindings", "etag", "auditConfigs"})
    if unknown:
        raise invalid(f"{field}.{unknown[0]}", "is not a field of google.iam.v1.Policy")
    version = value.get("version", 1)
    if version not in (0, 1, 3) or isinstance(version, bool):
        raise invalid(f"{field}.version", f"{version!r} is not a policy version (0, 1 or 3)")
    if value.get("auditConfigs"):
        raise invalid(f"{field}.auditConfigs", "audit configs are not supported: every change is recorded")
    bindings = value.get("bindings", [])
    if not isinstance(bindings, list):
        raise invalid(f"{field}.bindings", "must be a list")
    merged: dict[str, list[str]] = {}
    for i, binding in enumerate(bindings):
        where = f"{field}.bindings[{i}]"
        if not isinstance(binding, dict):
            raise invalid(where, "must be an object with role and members")
        extra = sorted(set(binding) - {"role", "members", "condition"})
        if extra:
            raise invalid(f"{where}.{extra[0]}", "is not a field of google.iam.v1.Binding")
        if binding.get("condition") is not None:
            raise invalid(f"{where}.condition", "conditional bindings are not supported")
        role = binding.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise invalid(f"{where}.role", f"{role!r} is not one of {', '.join(sorted(ROLES))}")
        members = binding.get("members", [])
        if not isinstance(members, list):
            raise invalid(f"{where}.members", "must be a list")
        for member in members:
            validate_member(member, f"{where}.members")
        kept = merged.setdefault(role, [])
        kept += [m for m in members if m not in kept]
    stored = [{"role": role, "members": members} for role, members in sorted(merged.items()) if members]
    return {"version": 1, "bindings": stored} if stored else {"version": 1}


def validate_member(member: object, field: str, *, principals_only: bool = False) -> str:
    """A binding member (`user:a@b`, `serviceAccount:...`, `allUsers`, ...); with `principals_only`,
    one principal (a token holder), not a set of them."""
    if member in ("allUsers", "allAuthenticatedUsers") and not principals_only:
        return str(member)
    if not isinstance(member, str) or ":" not in member:
        raise invalid(field, f"{member!r} is not a member (kind:id, allUsers or allAuthenticatedUsers)")
    kind, _, ident = member.partition(":")
    if kind not in _MEMBER_KINDS or not ident or any(c.isspace() for c in ident):
        raise invalid(field, f"{member!r} is not a member ({', '.join(_MEMBER_KINDS)}:id)")
    return member


def render_policy(policy: JSONObject, etag: str) -> JSONObject:
    """The Policy message as proto3 JSON prints it: no empty bindings, the etag last."""
    out: JSONObject = {}
    if policy.get("version"):
        out["version"] = policy["version"]
    if policy.get("bindings"):
        out["bindings"] = policy["bindings"]
    out["etag"] = etag
    return out


class Policies:
    """The policies of one ledger, cached in memory.

    Changes made through this object are seen at once; changes made by another process are picked up
    within `refresh_seconds` (the cache rereads the table when its row count has moved).
    """

    def __init__(self, db: ViewDatabase, refresh_seconds: float = 1.0) -> None:
        self.db, self.d = db, db.dialect
        self.table = self.d.table(TABLE)
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._latest: dict[str, PolicyChange] = {}
        self._rows = -1
        self._checked = 0.0

    ready = False  # the table is known to exist

    def ensure(self) -> None:
        with self.db.write() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} (resource TEXT NOT NULL, version INTEGER NOT NULL, "
                f"payload {self.d.blob} NOT NULL, PRIMARY KEY (resource, version))"
            )
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
            if not self.d.table_exists(cursor, TABLE):
                return []
            cursor.execute(
                self.d.sql(f"SELECT resource, version, payload FROM {self.table} WHERE resource = ? ORDER BY version"),
                (resource,),
            )
            return [_decode(*row).to_json() for row in cursor.fetchall()]

    # -- the one write --------------------------------------------------------------------------

    def set(
        self, resource: str, policy: object, *, principal: str, occurred_at: datetime | str | None = None
    ) -> JSONObject:
        """Record a new policy for the resource. An `etag` in the policy must be the current one."""
        resource = validate_resource(resource)
        stored = parse_policy(policy)
        given_etag = policy.get("etag") if isinstance(policy, dict) else None
        if given_etag is not None and not isinstance(given_etag, str):
            raise invalid("policy.etag", "must be a string (base64)")
        when: Timestamp = now() if occurred_at is None else parse_timestamp(occurred_at, "occurredAt")
        with self.db.write() as cursor:
            cursor.execute(
                self.d.sql(
                    f"SELECT resource, version, payload FROM {self.table} WHERE resource = ? "
                    f"ORDER BY version DESC LIMIT 1{self.d.for_update}"
                ),
                (resource,),
            )
            row = cursor.fetchone()
            previous = _decode(*row) if row else None
            current_etag = etag_of(previous.hash) if previous else EMPTY_ETAG
            if given_etag not in (None, "", current_etag):
                raise LedgerError(
                    Code.ABORTED, f"policy.etag: {given_etag!r} is stale; the policy of {resource!r} has changed"
                )
            change = _next_change(previous, resource, format_timestamp(when), principal, stored)
            payload = {k: v for k, v in change.body().items() if k not in ("resource", "version")}
            payload["hash"] = change.hash
            try:
                cursor.execute(
                    self.d.sql(f"INSERT INTO {self.table} VALUES (?, ?, ?)"),
                    (resource, change.version, orjson.dumps(payload)),
                )
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
            if not self.d.table_exists(cursor, TABLE):
                return 0, []
            cursor.execute(f"SELECT resource, version, payload FROM {self.table} ORDER BY resource, version")
            return audit_policies(cursor.fetchall())

    # -- the cache ------------------------------------------------------------------------------

    def _current(self) -> dict[str, PolicyChange]:
        with self._lock:
            if time.monotonic() - self._checked < self.refresh_seconds:
                return self._latest
            with self.db.read() as cursor:
                if not self.d.table_exists(cursor, TABLE):  # no policy was ever set: nothing is granted
                    self._checked = time.monotonic()
                    return {}
                cursor.execute(f"SELECT COUNT(*) FROM {self.table}")
                rows = int(cursor.fetchone()[0])
                if rows != self._rows:
                    cursor.execute(f"SELECT resource, version, payload FROM {self.table} ORDER BY resource, version")
                    self._latest = {change.resource: change for change in map(_decode_row, cursor.fetchall())}
                    self._rows = rows
            self._checked = time.monotonic()
            return self._latest


def _next_change(
    previous: PolicyChange | None, resource: str, occurred_at: str, principal: str, policy: JSONObject
) -> PolicyChange:
    version = previous.version + 1 if previous else 1
    draft = PolicyChange(resource, version, occurred_at, principal, policy, "")
    return PolicyChange(
        resource, version, occurred_at, principal, policy, link(previous.hash if previous else GENESIS, draft.body())
    )


def _decode(resource: str, version: int, payload: Any) -> PolicyChange:
    data = orjson.loads(payload_bytes(payload))
    return PolicyChange(resource, int(version), data["occurredAt"], data["principal"], data["policy"], data["hash"])


def _decode_row(row: tuple[Any, ...]) -> PolicyChange:
    return _decode(row[0], row[1], row[2])


def audit_policies(rows: Iterable[tuple[Any, ...]]) -> tuple[int, list[Finding]]:
    """Check every policy change (rows in resource, version order): versions without gaps, payloads
    that decode, policies that parse, and the hash chain. Returns (changes checked, error findings of
    kind `policy-version`, `policy-decode` or `policy-chain`, named by resource)."""
    checked, findings = 0, []
    resource, previous_hash, expected_version = None, GENESIS, 1
    for row in rows:
        checked += 1
        if row[0] != resource:
            resource, previous_hash, expected_version = row[0], GENESIS, 1
        where = f"policy change {row[1]} of {row[0]!r}"
        if row[1] != expected_version:
            findings.append(
                Finding("error", "policy-version", row[0], None, f"{where}: expected version {expected_version}")
            )
        expected_version = int(row[1]) + 1
        try:
            change = _decode(row[0], row[1], row[2])
            if parse_policy(change.policy) != change.policy:
                raise ValueError("the stored policy is not in its stored form")
        except (ValueError, KeyError, TypeError, LedgerError) as e:
            findings.append(Finding("error", "policy-decode", row[0], None, f"{where} cannot be decoded: {e}"))
            previous_hash = ""
            continue
        if link(previous_hash, change.body()) != change.hash:
            findings.append(
                Finding(
                    "error", "policy-chain", row[0], None, f"{where}: the hash does not match its content and chain"
                )
            )
        previous_hash = change.hash
    return checked, findings
