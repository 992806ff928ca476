"""The OpenAPI 3.0 document served at `/openapi.json`.

Written by hand from the messages of google.longrunning and google.iam.v1, because the paths carry
resource names with slashes and custom verbs that a framework's route decorators cannot express.
Response schemas forbid fields the messages do not define: Google's clients reject unknown fields,
so a response that breaks the schema here would break them too.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..domain.iam import PERMISSIONS, ROLES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_SEGMENT = r"[A-Za-z0-9._~-]+"


def _path_param(name: str, description: str, pattern: str, example: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
        "example": example,
    }


_OPERATION_ID = _path_param(
    "operation", "The operation's id, the segment after `operations/`.", f"^{_SEGMENT}$", "op-1"
)
_PARENT = _path_param(
    "parent",
    "The collection's parent, e.g. `projects/p/locations/l` (slashes allowed).",
    f"^{_SEGMENT}(/{_SEGMENT})*$",
    "projects/p",
)
_RESOURCE = _path_param(
    "resource",
    "Any resource name: a policy on it covers every name under it.",
    f"^{_SEGMENT}(/{_SEGMENT})*$",
    "projects/p",
)


def _json_body(schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _answer(schema: dict[str, Any], summary: str, operation_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": operation_id,
        **extra,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            "default": {
                "description": "An AIP-193 error",
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        },
    }


_LIST_QUERY = [
    {"name": "filter", "in": "query", "schema": {"type": "string"}, "description": "AIP-160 filter (SPEC §7)."},
    {"name": "pageSize", "in": "query", "schema": {"type": "integer", "format": "int32", "minimum": 0}},
    {"name": "pageToken", "in": "query", "schema": {"type": "string"}},
    {"name": "returnPartialSuccess", "in": "query", "schema": {"type": "boolean"}},
]


def _operation_paths(prefix: str, params: list[dict[str, Any]], style: str) -> dict[str, Any]:
    item = f"{prefix}/operations/{{operation}}"
    both = [*params, _OPERATION_ID]
    return {
        item: {
            "parameters": both,
            "get": _answer(_ref("Operation"), "Get an operation", f"getOperation{style}"),
            "delete": _answer(_ref("Empty"), "Delete an operation", f"deleteOperation{style}"),
        },
        f"{item}:cancel": {
            "parameters": both,
            "post": _answer(
                _ref("Empty"),
                "Request cancellation (records CancelRequested)",
                f"cancelOperation{style}",
                requestBody=_json_body(_ref("CancelOperationRequest")),
            ),
        },
        f"{item}:wait": {
            "parameters": both,
            "post": _answer(
                _ref("Operation"),
                "Wait until the operation is done or the timeout passes",
                f"waitOperation{style}",
                requestBody=_json_body(_ref("WaitOperationRequest")),
            ),
        },
        f"{prefix}/operations": {
            "parameters": params,
            "get": _answer(
                _ref("ListOperationsResponse"),
                "List the operations of a collection",
                f"listOperations{style}",
                parameters=_LIST_QUERY,
            ),
        },
    }


def _iam_paths() -> dict[str, Any]:
    verbs = {
        "getIamPolicy": ("GetIamPolicyRequest", "Policy", "The policy set on exactly this resource (admin only)"),
        "setIamPolicy": ("SetIamPolicyRequest", "Policy", "Replace the resource's policy (etag-checked)"),
        "testIamPermissions": (
            "TestIamPermissionsRequest",
            "TestIamPermissionsResponse",
            "Which of the given permissions the caller holds",
        ),
    }
    return {
        f"/v1/{{resource}}:{verb}": {
            "parameters": [_RESOURCE],
            "post": _answer(
                _ref(answer), summary, verb, requestBody=_json_body(_ref(request), required=verb == "setIamPolicy")
            ),
        }
        for verb, (request, answer, summary) in verbs.items()
    }


_ANY = {
    "type": "object",
    "required": ["@type"],
    "properties": {"@type": {"type": "string"}},
    "additionalProperties": True,
}
_SCHEMAS: dict[str, Any] = {
    "Any": _ANY,
    "Status": {
        "type": "object",
        "properties": {
            "code": {"type": "integer", "format": "int32"},
            "message": {"type": "string"},
            "details": {"type": "array", "items": _ref("Any")},
        },
        "additionalProperties": False,
    },
    "Operation": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "metadata": _ref("Any"),
            "done": {"type": "boolean"},
            "error": _ref("Status"),
            "response": _ref("Any"),
        },
        "additionalProperties": False,
    },
    "ListOperationsResponse": {
        "type": "object",
        "properties": {
            "operations": {"type": "array", "items": _ref("Operation")},
            "nextPageToken": {"type": "string"},
            "unreachable": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "Empty": {"type": "object", "additionalProperties": False, "maxProperties": 0},
    "CancelOperationRequest": {"type": "object", "additionalProperties": False, "maxProperties": 0},
    "WaitOperationRequest": {
        "type": "object",
        "properties": {"timeout": {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,9})?s$", "example": "5s"}},
        "additionalProperties": False,
    },
    "Binding": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "enum": sorted(ROLES)},
            "members": {"type": "array", "items": {"type": "string"}},
        },
        "additionalProperties": False,
    },
    "Policy": {
        "type": "object",
        "properties": {
            "version": {"type": "integer", "format": "int32", "enum": [0, 1, 3]},
            "bindings": {"type": "array", "items": _ref("Binding")},
            "etag": {"type": "string", "format": "byte"},
        },
        "additionalProperties": False,
    },
    "GetIamPolicyRequest": {
        "type": "object",
        "properties": {
            "options": {
                "type": "object",
                "properties": {"requestedPolicyVersion": {"type": "integer", "format": "int32", "enum": [0, 1, 3]}},
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
    },
    "SetIamPolicyRequest": {
        "type": "object",
        "required": ["policy"],
        "properties": {
            "policy": _ref("Policy"),
            "updateMask": {"type": "string", "pattern": "^((bindings|etag|version)(,(bindings|etag|version))*)?$"},
        },
        "additionalProperties": False,
    },
    "TestIamPermissionsRequest": {
        "type": "object",
        "properties": {"permissions": {"type": "array", "items": {"type": "string"}}},
        "additionalProperties": False,
    },
    "TestIamPermissionsResponse": {
        "type": "object",
        "properties": {"permissions": {"type": "array", "items": {"type": "string", "enum": sorted(PERMISSIONS)}}},
        "additionalProperties": False,
    },
    "Event": {
        "type": "object",
        "description": "An event as SPEC §2's event JSON (type, name, occurredAt and the type's fields).",
        "required": ["type", "name"],
        "properties": {
            "type": {
                "type": "string",
                "enum": ["Created", "Progressed", "CancelRequested", "Succeeded", "Failed", "Deleted"],
            },
            "name": {"type": "string"},
            "occurredAt": {"type": "string", "format": "date-time"},
        },
        "additionalProperties": True,
    },
    "LineResult": {
        "type": "object",
        "required": ["line", "status"],
        "properties": {
            "line": {"type": "integer"},
            "status": {"type": "string", "enum": ["RECORDED", "DUPLICATE", "UNCHANGED", "STALE", "REJECTED"]},
            "error": _ref("Status"),
        },
        "additionalProperties": False,
    },
    "EventsResponse": {
        "type": "object",
        "required": ["results", "recorded", "duplicates", "rejected"],
        "properties": {
            "results": {"type": "array", "items": _ref("LineResult")},
            "recorded": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {"type": "integer"},
        },
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer"},
                    "message": {"type": "string"},
                    "status": {"type": "string"},
                    "details": {"type": "array", "items": _ref("Any")},
                },
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
    },
}


def openapi_document() -> dict[str, Any]:
    events = _answer(
        _ref("EventsResponse"),
        "Record events (SPEC §2 ingest rules), with a result for every line",
        "recordEvents",
        requestBody={
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": _ref("Event")}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
    )
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ledger operations service",
            "version": __version__,
            "description": "google.longrunning.Operations over HTTP, backed by an event-sourced ledger, "
            "with google.iam.v1 policies on resource-name prefixes.",
        },
        "paths": {
            **_operation_paths("/v1", [], "Root"),
            **_operation_paths("/v1/{parent}", [_PARENT], ""),
            **_iam_paths(),
            "/v1/events": {"post": events},
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
