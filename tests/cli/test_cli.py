"""The `ledger` command: JSON on stdout, `Error: CODE_NAME: message` on stderr, exit codes 0/1/2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from ledger import __version__
from ledger.cli import cli

OP = "projects/p/locations/us-east1/operations/op-1"


def run(url: str, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", url, *args], input=stdin, catch_exceptions=False)


def data(result: Result) -> object:
    assert result.exit_code == 0, result.stderr
    return orjson.loads(result.stdout)


def test_lifecycle_through_the_command_line(ledger_url: str, tmp_path: Path) -> None:
    assert run(ledger_url, "init").exit_code == 0
    assert run(ledger_url, "init").exit_code == 0  # idempotent
    created = data(run(ledger_url, "create", OP, "--verb", "create", "--target", "t", "--at", "2026-11-21T10:00:00Z"))
    assert created == {
        "name": OP,
        "metadata": {
            "@type": "type.googleapis.com/google.cloud.common.OperationMetadata",
            "createTime": "2026-11-21T10:00:00Z",
            "target": "t",
            "verb": "create",
        },
    }
    progressed = data(run(ledger_url, "progress", OP, "--detail", "half", "--percent", "50"))
    assert progressed["metadata"]["statusDetail"] == "half"  # type: ignore[index]
    assert data(run(ledger_url, "cancel", OP))["metadata"]["cancelRequested"] is True  # type: ignore[index]
    details = tmp_path / "details.json"
    details.write_text('[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER"}]')
    failed = data(run(ledger_url, "fail", OP, "--code", "cancelled", "--message", "stop", "--details", f"@{details}"))
    assert failed["error"] == {  # type: ignore[index]
        "code": 1,
        "message": "stop",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER"}],
    }
    assert data(run(ledger_url, "get", OP)) == failed
    assert data(run(ledger_url, "get", OP, "--version", "1")) == created
    assert data(run(ledger_url, "get", OP, "--as-of", "2026-11-21T10:00:00Z")) == created

    history = data(run(ledger_url, "history", OP))
    assert isinstance(history, list)
    assert [e["type"] for e in history] == [
        "Created",
        "Progressed",
        "CancelRequested",
        "Failed",
    ]
    lines = run(ledger_url, "history", OP, "--format", "jsonl").stdout.splitlines()
    assert [orjson.loads(line) for line in lines] == history

    deleted = run(ledger_url, "delete", OP)
    assert deleted.exit_code == 0
    assert deleted.stdout == "{}\n"


def test_succeed_with_response_file_and_wait(ledger_url: str, tmp_path: Path) -> None:
    response = tmp_path / "r.json"
    response.write_text('{"@type": "type.googleapis.com/acme.Build", "id": "7"}')
    data(run(ledger_url, "create", "operations/b"))
    done = data(run(ledger_url, "succeed", "operations/b", "--response", f"@{response}"))
    assert done["response"] == {"@type": "type.googleapis.com/acme.Build", "id": "7"}  # type: ignore[index]
    assert data(run(ledger_url, "wait", "operations/b", "--timeout", "1")) == done
    data(run(ledger_url, "create", "operations/slow"))
    waited = run(ledger_url, "wait", "operations/slow", "--timeout", "0.3")
    # Still running when the timeout passed: the latest state on stdout, and not a success.
    assert waited.exit_code == 1
    assert "done" not in orjson.loads(waited.stdout)
    assert waited.stderr.startswith("Error: DEADLINE_EXCEEDED: operations/slow is still running")
    data(run(ledger_url, "fail", "operations/slow", "--code", "NOT_FOUND", "--message", "gone"))
    failed = run(ledger_url, "wait", "operations/slow", "--timeout", "1")
    assert failed.exit_code == 1  # done, but failed: its own code
    assert orjson.loads(failed.stdout)["error"]["code"] == 5
    assert failed.stderr.startswith("Error: NOT_FOUND: operations/slow failed: gone")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["get", "operations/none"], "Error: NOT_FOUND: operation 'operations/none' not found"),
        (["create", "bad name"], "Error: INVALID_ARGUMENT: name: "),
        (["progress", "operations/x", "--percent", "101"], "Error: INVALID_ARGUMENT: progressPercent: "),
        (["fail", "operations/x", "--code", "0"], "Error: INVALID_ARGUMENT: error.code: "),
        (["fail", "operations/x", "--code", "17"], "Error: INVALID_ARGUMENT: error.code: "),
        (["create", "operations/y", "--metadata", "{nope"], "Error: INVALID_ARGUMENT: metadata: not valid JSON"),
        (["create", "operations/y", "--metadata", '{"a": 1}'], "Error: INVALID_ARGUMENT: metadata: needs an @type"),
        (["succeed", "operations/x", "--at", "noon"], "Error: INVALID_ARGUMENT: occurredAt: "),
        (["succeed", "operations/x", "--response", "[]"], "Error: INVALID_ARGUMENT: response: "),
        (["progress", "operations/done", "--detail", "late"], "Error: FAILED_PRECONDITION: "),
        (["create", "operations/x", "--verb", "other"], "Error: ALREADY_EXISTS: "),
    ],
)
def test_errors_exit_1_with_code_name(ledger_url: str, args: list[str], says: str) -> None:
    data(run(ledger_url, "create", "operations/x"))
    data(run(ledger_url, "create", "operations/done"))
    data(run(ledger_url, "succeed", "operations/done"))
    result = run(ledger_url, *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(says), result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["fail", "operations/x"],  # --code is required
        ["get", "operations/x", "--as-of", "2026-11-21T10:00:00Z", "--version", "1"],
        ["progress", "operations/x", "--percent", "many"],
        ["create", "operations/x", "--lifecycle-fields", "all"],
        ["create", "operations/x", "--metadata", "@/no/such/file.json"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str]) -> None:
    assert run(f"sqlite:///{tmp_path}/l.db", *args).exit_code == 2


def test_reading_a_missing_sqlite_file_does_not_create_it(tmp_path: Path) -> None:
    result = run(f"sqlite:///{tmp_path}/missing.db", "get", "operations/x")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: UNAVAILABLE: no ledger at ")
    assert not (tmp_path / "missing.db").exists()


def test_passwords_never_printed() -> None:
    result = run("postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere", "create", "operations/x")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: UNAVAILABLE: cannot reach postgresql://alice:***@127.0.0.1:1/nowhere")
    assert "s3cr3t-pw" not in result.stderr + result.stdout


def test_version_help_and_env_default(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["--version"]).stdout.strip() == f"ledger, version {__version__}"
    helped = CliRunner().invoke(cli, ["-h"])
    assert helped.exit_code == 0
    assert "history" in helped.stdout
    assert "LEDGER_DATABASE_URL" in helped.stdout
    url = f"sqlite:///{tmp_path}/env.db"
    result = CliRunner().invoke(cli, ["create", "operations/env"], env={"LEDGER_DATABASE_URL": url})
    assert result.exit_code == 0
    assert (tmp_path / "env.db").exists()


def test_installed_console_script(tmp_path: Path) -> None:
    """The real entry point, as a new process: data on stdout, the error line on stderr."""
    ledger = Path(sys.executable).with_name("ledger")
    url = f"sqlite:///{tmp_path}/p.db"
    created = subprocess.run([ledger, "--db", url, "create", "operations/p"], capture_output=True, check=True)
    assert orjson.loads(created.stdout)["name"] == "operations/p"
    missing = subprocess.run([ledger, "--db", url, "get", "operations/q"], capture_output=True, check=False)
    assert missing.returncode == 1
    assert missing.stdout == b""
    assert missing.stderr == b"Error: NOT_FOUND: operation 'operations/q' not found\n"


def test_cli_reference_matches_the_commands() -> None:
    from ledger.cli.reference import render

    reference = Path(__file__).parents[2] / "docs" / "cli.md"
    assert reference.read_text() == render(cli), "docs/cli.md is stale: python -m ledger.cli.reference > docs/cli.md"


def _listing_fixture(url: str) -> None:
    for i in range(5):
        name = f"projects/p{i % 2}/operations/op-{i}"
        data(run(url, "create", name, "--verb", "create" if i % 2 else "build", "--at", f"2026-11-21T10:00:0{i}Z"))
    data(
        run(
            url,
            "create",
            "operations/custom",
            "--verb",
            "train",
            "--at",
            "2026-11-21T09:00:00Z",
            "--metadata",
            '{"@type": "type.googleapis.com/acme.v1.TrainMetadata", "steps": 10}',
        )
    )
    data(run(url, "fail", "projects/p1/operations/op-1", "--code", "CANCELLED", "--at", "2026-11-21T10:01:00Z"))


def test_list_formats_and_paging(ledger_url: str) -> None:
    _listing_fixture(ledger_url)
    everything = data(run(ledger_url, "list"))
    assert [op["name"] for op in everything["operations"]] == [  # type: ignore[index]
        "projects/p0/operations/op-4",
        "projects/p1/operations/op-3",
        "projects/p0/operations/op-2",
        "projects/p1/operations/op-1",
        "projects/p0/operations/op-0",
        "operations/custom",
    ]
    first = data(run(ledger_url, "list", "--page-size", "4"))
    assert len(first["operations"]) == 4  # type: ignore[index]
    second = data(run(ledger_url, "list", "--page-size", "4", "--page-token", first["nextPageToken"]))  # type: ignore[index]
    assert first["operations"] + second["operations"] == everything["operations"]  # type: ignore[index]
    assert "nextPageToken" not in second  # type: ignore[operator]
    assert data(run(ledger_url, "list", "--page-size", "1", "--all")) == everything

    lines = run(ledger_url, "list", "--format", "jsonl", "--page-size", "2", "--all").stdout.splitlines()
    assert [orjson.loads(line) for line in lines] == everything["operations"]  # type: ignore[index]

    parent = data(run(ledger_url, "list", "projects/p1/operations", "--filter", "done = true"))
    assert [op["name"] for op in parent["operations"]] == ["projects/p1/operations/op-1"]  # type: ignore[index]

    csv_lines = run(ledger_url, "list", "--format", "csv", "--filter", 'verb = "train"').stdout.splitlines()
    assert csv_lines == [
        "name,state,verb,target,createTime,endTime,errorCode,metadataType",
        "operations/custom,RUNNING,train,,2026-11-21T09:00:00Z,,,type.googleapis.com/acme.v1.TrainMetadata",
    ]
    table = run(ledger_url, "list", "--format", "table", "--filter", "state = CANCELLED").stdout.splitlines()
    assert table[0].split() == ["name", "state", "verb", "target", "createTime", "endTime", "errorCode", "metadataType"]
    assert table[1].split()[:3] == ["projects/p1/operations/op-1", "CANCELLED", "create"]

    as_of = data(run(ledger_url, "list", "--as-of", "2026-11-21T10:00:02Z"))
    assert [op["name"] for op in as_of["operations"]] == [  # type: ignore[index]
        "projects/p0/operations/op-2",
        "projects/p1/operations/op-1",
        "projects/p0/operations/op-0",
        "operations/custom",
    ]


def test_list_errors(ledger_url: str) -> None:
    _listing_fixture(ledger_url)
    bad = run(ledger_url, "list", "--filter", "done = maybe")
    assert bad.exit_code == 1
    assert bad.stderr == "Error: INVALID_ARGUMENT: filter: done is true or false, not 'maybe' at position 1\n"
    token = data(run(ledger_url, "list", "--page-size", "1"))["nextPageToken"]  # type: ignore[index]
    reused = run(ledger_url, "list", "--page-size", "1", "--page-token", token, "--filter", "done = true")
    assert reused.exit_code == 1
    assert reused.stderr.startswith("Error: INVALID_ARGUMENT: page_token: ")
    assert run(ledger_url, "list", "--page-size", "-1").exit_code == 1


def test_replay_command(ledger_url: str) -> None:
    _listing_fixture(ledger_url)
    before = run(ledger_url, "list").stdout
    result = run(ledger_url, "replay")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {
        "replayed": ["operations"],
        "lag": {"operations": 0},
    }
    assert "replaying events" in result.stderr  # the progress bar goes to stderr, never into the data
    assert run(ledger_url, "list").stdout == before
    only = run(ledger_url, "replay", "--projection", "operations", "--batch-size", "2")
    assert orjson.loads(only.stdout)["replayed"] == ["operations"]
    assert run(ledger_url, "list", "--as-of", "2026-11-21T10:00:02Z").exit_code == 0
    assert run(ledger_url, "replay", "--projection", "nope").exit_code == 2
