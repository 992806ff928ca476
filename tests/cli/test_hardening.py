"""The command line as a careless operator meets it: read-only copies, damaged files, closed pipes,
files that are not UTF-8, a password in --db. Run as real processes, as an operator runs them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from ..support import PG_DSN, drop_schema, needs_postgres, with_schema

LEDGER = str(Path(sys.executable).with_name("ledger"))


def ledger(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([LEDGER, *args], capture_output=True, timeout=60, check=False)
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


def _read_only(command: list[str], directory: Path) -> list[str]:
    """The command with `directory` out of the ledger's reach: as root (who may write a 0444 file), on a
    read-only bind mount of its own; otherwise mode 0444 in a 0555 directory is enough."""
    if os.geteuid() != 0:
        return command
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], check=False).returncode != 0:
        pytest.skip("running as root without mount namespaces: a read-only copy cannot be made")
    mount = f"mount --bind -o ro {directory} {directory}"
    quoted = " ".join(f"'{part}'" for part in command)
    return ["unshare", "-m", "sh", "-c", f"{mount} && exec {quoted}"]


def test_audit_verify_and_get_work_on_a_read_only_copy(tmp_path: Path) -> None:
    source = tmp_path / "ledger.db"
    url = f"sqlite:///{source}"
    ledger("--db", url, "create", "operations/a", "--verb", "build")
    digest = ledger("--db", url, "digest").stdout.decode().strip()
    copy_dir = tmp_path / "copy"
    copy_dir.mkdir()
    shutil.copy(source, copy_dir / "ledger.db")  # WAL checkpointed at close: the file is whole
    (copy_dir / "ledger.db").chmod(0o444)
    copy_dir.chmod(0o555)
    copy = f"sqlite:///{copy_dir}/ledger.db"
    try:
        for args, expected in (
            (["audit"], b'"ok":true'),
            (["verify", "--digest", digest], b'"ok":true'),
            (["get", "operations/a"], b'"verb":"build"'),
            (["list"], b"operations/a"),
        ):
            done = subprocess.run(
                _read_only([LEDGER, "--db", copy, *args], copy_dir), capture_output=True, timeout=60, check=False
            )
            assert done.returncode == 0 and expected in done.stdout, (args, done.stderr.decode())
        assert sorted(p.name for p in copy_dir.iterdir()) == ["ledger.db"]
    finally:
        copy_dir.chmod(0o755)


def test_a_damaged_file_makes_audit_exit_3_with_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    lines = b"".join(
        orjson.dumps({"type": "Created", "name": f"operations/bulk-{i}", "occurredAt": "2026-01-01T00:00:00Z"}) + b"\n"
        for i in range(2000)  # enough pages that damage in the middle hits the log, not the header
    )
    subprocess.run([LEDGER, "--db", url, "ingest", "-"], input=lines, capture_output=True, timeout=120, check=True)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = b"\xab" * 4096
    path.write_bytes(bytes(data))
    done = ledger("--db", url, "audit", check=False)
    assert done.returncode == 3, done.stderr.decode()
    report = orjson.loads(done.stdout)
    assert not report["ok"] and any(f["kind"] in ("integrity", "decode", "chain") for f in report["findings"])


def test_a_closed_pipe_ends_export_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = b"".join(
        orjson.dumps({"type": "Created", "name": f"operations/p-{i}", "occurredAt": "2026-01-01T00:00:00Z"}) + b"\n"
        for i in range(3000)
    )
    subprocess.run([LEDGER, "--db", url, "ingest", "-"], input=lines, capture_output=True, timeout=120, check=True)
    export = subprocess.Popen([LEDGER, "--db", url, "export"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert export.stdout is not None and export.stderr is not None
    export.stdout.read(100)
    export.stdout.close()  # as `head` does
    stderr = export.stderr.read()
    assert export.wait(60) == 141
    assert stderr == b""


def test_a_json_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{}")
    done = ledger("--db", f"sqlite:///{tmp_path}/l.db", "create", "operations/a", "--metadata", f"@{bad}", check=False)
    assert done.returncode == 2 and b"is not UTF-8 text" in done.stderr


@needs_postgres
def test_a_password_in_db_is_not_left_in_ps_by_follow(tmp_path: Path) -> None:
    schema = f"ps_{os.getpid()}"
    user, rest = PG_DSN.removeprefix("postgresql://").split("@", 1)
    url = with_schema(f"postgresql://{user.split(':')[0]}:not-in-ps@{rest}", schema)  # trust auth ignores it
    ledger("--db", url, "init")
    follow = subprocess.Popen([LEDGER, "--db", url, "follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.5)
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else b""
        command_line = Path(f"/proc/{follow.pid}/cmdline").read_bytes()
        assert b"not-in-ps" not in command_line and b"follow" in command_line
    finally:
        follow.terminate()
        follow.wait(10)
        drop_schema(PG_DSN, schema)
