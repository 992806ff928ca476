"""The ledger's JSON as protobuf messages, every `Any` packed from its message type's descriptor.

The ledger keeps metadata, responses and error details as proto3 JSON (`{"@type": ..., fields}`);
gRPC carries each `Any` as the type URL and the message's binary encoding, which only a descriptor
of that type can produce. Descriptors come from three places, tried in this order:

1. types already in protobuf's default pool (googleapis-common-protos, anything imported);
2. installed packages, found by the module naming rules of Google's generators: proto package
   `google.cloud.dataproc.v1` lives in `google.cloud.dataproc_v1` (GAPIC, proto-plus types), and
   `google.rpc` or `google.identity.accesscontextmanager.v1` in `*_pb2` modules of that package's
   own folder; `google.spanner.admin.instance.v1` in `google.cloud.spanner_admin_instance_v1`; so
   every google-cloud-* client library installed beside the ledger is found without configuration;
3. protoc descriptor sets given with `--descriptor-set FILE` (`protoc --include_imports
   --descriptor_set_out=FILE x.proto`), for an API's own types.

A payload that no descriptor can encode exactly (an unknown type, or a field the installed
definition lacks) fails its call with FAILED_PRECONDITION naming the type and how to supply it:
dropping the field, or sending the JSON some other way, would change what the client sees.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from google.longrunning import operations_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message

from ...domain.errors import Code, LedgerError, invalid

_log = logging.getLogger("ledger.server")
M = TypeVar("M", bound=message.Message)
_UNKNOWN_TYPE = re.compile(r"Can not find message descriptor by type_url: (\S+?)(?: at |\.?$)")
_NAMED_TYPE = re.compile(r'Message type "([\w.]+)"')
_VERSION = re.compile(r"v\d+(?:p\d+)?(?:alpha|beta)?\d*")
_MAX_LOOKUPS = 64  # an operation naming more unknown types than this is refused rather than searched on


class UnpackableError(LedgerError):
    """A payload that cannot be sent over gRPC as it is stored; `type_name` is the type at fault."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(Code.FAILED_PRECONDITION, message)
        self.type_name = type_name


def _supply_hint(type_name: str) -> str:
    return (
        f"install the client library that defines {type_name} beside the server, or start `ledger serve` "
        "with --descriptor-set FILE made by `protoc --include_imports --descriptor_set_out=FILE` from its .proto"
    )


class TypeRegistry:
    """Finds message types for type URLs and parses the ledger's JSON with them."""

    def __init__(self, descriptor_sets: Iterable[Path] = ()) -> None:
        self.pool = descriptor_pool.Default()
        self._lock = threading.RLock()
        self._found: dict[str, str | None] = {}  # full name -> where its descriptor came from
        self._set_files: dict[str, Path] = {}  # .proto file name -> the descriptor set that added it
        for path in descriptor_sets:
            self._load_set(Path(path))

    # -- finding types --------------------------------------------------------------------------

    def find(self, type_name: str) -> str | None:
        """Where the descriptor of `type_name` (a full name or a type URL) comes from; None when
        nothing defines it. Answers, found or not, are kept: installed packages and descriptor sets do
        not change while a server runs."""
        name = type_name.rsplit("/", 1)[-1]
        with self._lock:
            if name not in self._found:
                if self._descriptor(name) is None:
                    for module in _candidate_modules(name):
                        _import_quietly(module)
                        if self._descriptor(name) is not None:
                            break
                descriptor = self._descriptor(name)
                self._found[name] = None if descriptor is None else self._source(descriptor.file.name)
            return self._found[name]

    def _descriptor(self, name: str) -> Any:
        try:
            return self.pool.FindMessageTypeByName(name)
        except KeyError:
            return None

    def _source(self, file_name: str) -> str:
        where = self._set_files.get(file_name)
        return f"descriptor set {where}" if where else f"installed ({file_name})"

    def _load_set(self, path: Path) -> None:
        try:
            files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
        except OSError as e:
            raise invalid("descriptor-set", f"cannot read {path}: {e.strerror}") from None
        except Exception as e:  # protobuf's DecodeError, or a message of another type
            raise invalid("descriptor-set", f"{path} is not a protoc descriptor set: {e}") from None
        for file in files:
            with self._lock:
                self._add_file(path, file)

    def _add_file(self, path: Path, file: descriptor_pb2.FileDescriptorProto) -> None:
        # An installed definition of the same file wins, so a later import of its module cannot clash.
        for message_type in file.message_type:
            name = f"{file.package}.{message_type.name}" if file.package else message_type.name
            if self.find(name) is not None and self.pool.FindMessageTypeByName(name).file.name != file.name:
                raise invalid(
                    "descriptor-set",
                    f"{path}: {name} is already defined ({self.find(name)}); a descriptor set adds types, it "
                    "cannot replace one that an installed package defines",
                )
        try:
            self.pool.FindFileByName(file.name)
            return
        except KeyError:
            pass
        try:
            self.pool.Add(file)
        except Exception as e:  # TypeError for a missing dependency or a name defined twice
            raise invalid(
                "descriptor-set",
                f"{path}: {file.name} cannot be loaded ({e}); make the set with protoc --include_imports",
            ) from None
        self._set_files[file.name] = path
        for message_type in file.message_type:  # forget earlier misses that this file answers
            self._found.pop(f"{file.package}.{message_type.name}" if file.package else message_type.name, None)

    # -- parsing --------------------------------------------------------------------------------

    def operation(self, body: bytes) -> operations_pb2.Operation:
        return self.parse(body, operations_pb2.Operation, "operation")

    def page(self, body: bytes) -> operations_pb2.ListOperationsResponse:
        return self.parse(body, operations_pb2.ListOperationsResponse, "page")

    def parse(self, body: bytes, kind: type[M], what: str) -> M:
        """`body` (proto3 JSON) as a `kind` message, unknown fields refused, as Google's clients parse."""
        tried: set[str] = set()
        while True:
            try:
                return json_format.Parse(body, kind(), ignore_unknown_fields=False, descriptor_pool=self.pool)
            except json_format.ParseError as e:
                problem = str(e).split("\n", 1)[0]
                unknown = _UNKNOWN_TYPE.search(problem)
                if unknown is None:
                    raise self._mismatch(problem, what) from None
                type_url = unknown.group(1)
                if type_url in tried or len(tried) >= _MAX_LOOKUPS or self.find(type_url) is None:
                    name = type_url.rsplit("/", 1)[-1]
                    problem = f"cannot send {type_url} over gRPC: no descriptor of {name} is known"
                    raise UnpackableError(name, f"{problem}; {_supply_hint(name)}") from None
                tried.add(type_url)

    def _mismatch(self, problem: str, what: str) -> UnpackableError:
        named = _NAMED_TYPE.search(problem)
        name = named.group(1) if named else ""
        source = self.find(name) if name else None
        if source and source.startswith("descriptor set"):
            remedy = "make that descriptor set again from the API's current .proto"
        else:
            remedy = "install a version of the client library that defines it as the API now does"
        return UnpackableError(
            name,
            f"cannot send this {what} over gRPC exactly: {problem}; the definition of {name or 'a type'} "
            f"({source or 'installed'}) does not match the stored JSON: {remedy}",
        )


def type_urls(value: object) -> Iterator[str]:
    """Every `@type` in a JSON value, at any depth."""
    if isinstance(value, dict):
        kind = value.get("@type")
        if isinstance(kind, str):
            yield kind
        for item in value.values():
            yield from type_urls(item)
    elif isinstance(value, list):
        for item in value:
            yield from type_urls(item)


def _candidate_modules(name: str) -> Iterator[str]:
    """Python modules that may define the full proto name `name`, by Google's generators' rules.
    Every dotted prefix is tried as the proto package, longest first, since nested messages
    (`pkg.Outer.Inner`) put more than the package before the last dot."""
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        package = parts[:end]
        yield from _pb2_modules(".".join(package))
        if _VERSION.fullmatch(package[-1]) and len(package) >= 2:
            versioned = [*package[:-2], f"{package[-2]}_{package[-1]}"]
            gapic = [".".join(versioned)]
            if package[0] == "google" and package[1] != "cloud":
                gapic.append(".".join(["google", "cloud", *versioned[1:]]))
                gapic.append("google.cloud." + "_".join(package[1:]))
            for module in gapic:
                yield f"{module}.types"
        else:
            yield ".".join(package)  # an unversioned GAPIC package (google.cloud.common) imports its types


def _pb2_modules(package: str) -> Iterator[str]:
    """The `*_pb2` modules in the Python package of that dotted name, if it is installed."""
    module = _import_quietly(package)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if info.name.endswith("_pb2"):
            yield f"{package}.{info.name}"


def _import_quietly(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except Exception as e:  # not installed, or a module that fails on import: not a source of types
        if not isinstance(e, ModuleNotFoundError):
            _log.debug("importing %s for its message types failed: %s", module, e)
        return None
