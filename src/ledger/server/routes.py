"""Which method a request calls: the google.longrunning HTTP rules in both binding styles.

google-api-core's REST operations client calls `/v1/{name=**/operations/*}` and
`/v1/{name=**}/operations`; operations.proto annotates `/v1/{name=operations/**}` and
`/v1/{name=operations}`. Both reduce to one rule here: a path that is an operation name addresses that
operation, and one that ends in `operations` lists the collection before it. A name that neither
rule binds (`projects/p/jobs/j`) is not served over HTTP. A custom verb (`:cancel`) follows the last
`:` of the last segment, and only POST takes one, so a GET of an id holding a `:` still reads that
operation.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "/v1/"
OPERATION_VERBS = frozenset({"cancel", "wait"})
IAM_VERBS = frozenset({"getIamPolicy", "setIamPolicy", "testIamPermissions"})
EVENTS_PATH = "/v1/events"


@dataclass(frozen=True)
class Call:
    method: str  # get | list | delete | cancel | wait | getIamPolicy | setIamPolicy | testIamPermissions | events
    name: str  # the operation, the collection's parent, or the resource (for IAM); "" for the root


def route(http_method: str, path: str) -> Call | None:
    """The call a request makes, or None when no rule matches."""
    if path == EVENTS_PATH:
        return Call("events", "") if http_method == "POST" else None
    if not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX) :]
    if http_method == "POST":
        head, colon, verb = rest.rpartition(":")
        if not colon or "/" in verb:
            return None
        if verb in IAM_VERBS:
            return Call(verb, head)
        if verb in OPERATION_VERBS and _is_operation(head):
            return Call(verb, head)
        return None
    if http_method == "GET":
        if _is_operation(rest):
            return Call("get", rest)
        if rest == "operations":
            return Call("list", "")
        if rest.endswith("/operations") and rest != "/operations":
            return Call("list", rest.removesuffix("/operations"))
        return None
    if http_method == "DELETE" and _is_operation(rest):
        return Call("delete", rest)
    return None


def _is_operation(path: str) -> bool:
    """A path either rule binds to an operation: `**/operations/*` or `operations/**` (which holds
    Access Context Manager's `operations/accessPolicies/{p}/create/{id}`, and Speech v1's bare
    numbers as its clients write them, `operations/{number}`). Whether the name is valid is the
    ledger's to say."""
    segments = path.split("/")
    if segments[-1] == "":
        return False
    return (len(segments) >= 2 and segments[-2] == "operations") or (
        segments[0] == "operations" and len(segments) >= 2 and segments[-1] != "operations"
    )
