"""Who may do what: the IAM model of the ledger's policies (`google.iam.v1.Policy` JSON) on
resource-name prefixes. Pure: the policies' store is `policies.py` over `storage/policies.py`.

A policy set on `projects/p` grants its roles on every name under it (`projects/p/operations/x`,
`projects/p/locations/l/operations/y`), segment by segment; the root resource `""` covers everything.
Each change is hash-chained per resource, as operation events are; the `etag` of a policy derives
from its latest change's hash.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson

from .chain import GENESIS, link
from .errors import invalid
from .values import JSONObject

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


def next_change(
    previous: PolicyChange | None, resource: str, occurred_at: str, principal: str, policy: JSONObject
) -> PolicyChange:
    version = previous.version + 1 if previous else 1
    draft = PolicyChange(resource, version, occurred_at, principal, policy, "")
    return PolicyChange(
        resource, version, occurred_at, principal, policy, link(previous.hash if previous else GENESIS, draft.body())
    )


def decode_change(resource: str, version: int, payload: bytes) -> PolicyChange:
    """A stored change: its row's resource and version, and its payload's JSON."""
    data = orjson.loads(payload)
    return PolicyChange(resource, int(version), data["occurredAt"], data["principal"], data["policy"], data["hash"])
