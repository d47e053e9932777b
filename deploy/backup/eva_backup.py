#!/usr/bin/env python3
"""EVA backups: one dated .tar.gz per run with the database, Redis, the WhatsApp sessions and media.

Standard library only, so it runs in the small backup image and in the test suite alike. External
programs (pg_dump, pg_dumpall, psql, rclone) are found on PATH or through the variables below.

Commands:
  backup     make one archive now, upload it (when R2_REMOTE_NAME is set) and rotate old copies
  schedule   run `backup` every day at BACKUP_SCHEDULE_UTC (default 03:00) in a loop; this is the
             backup container's command, so the host needs no cron
  rotate     delete local (and remote) archives older than BACKUP_RETENTION_DAYS

Archive layout (eva-backup-YYYYMMDDTHHMMSSZ.tar.gz, plus a .sha256 file beside it):
  manifest.json          what is inside, with a sha256 per member and per-schema row counts
  db/database.dump       `pg_dump -Fc` of the whole database (every tenant schema)
  db/globals.sql         `pg_dumpall --globals-only` (roles, tablespaces)
  redis/<dbfilename>     the RDB snapshot written by a BGSAVE we waited for
  volumes/session/...    the WhatsApp session folder (browser caches left out)
  volumes/media/...      shared media (voice notes, images, uploaded documents)

Environment (all optional except DATABASE_URL for the database step):
  DATABASE_URL            postgres://user:password@host:5432/dbname
  PG_BIN_DIR              folder holding pg_dump/pg_dumpall/psql (default: PATH)
  REDIS_URL               redis://[:password@]host:6379/0; unset skips the Redis step
  REDIS_DATA_DIR          where this process sees Redis's data folder (default: CONFIG GET dir)
  BACKUP_SESSION_DIR      WhatsApp session folder to archive; unset skips it
  BACKUP_MEDIA_DIR        media folder to archive; unset skips it
  BACKUP_DIR              where archives are written (default /backups)
  BACKUP_RETENTION_DAYS   keep this many days of archives, locally and remotely (default 7)
  BACKUP_SCHEDULE_UTC     HH:MM in UTC for `schedule` (default 03:00)
  BACKUP_RUN_ON_START     true: `schedule` also makes one archive right away
  R2_REMOTE_NAME          rclone remote name (e.g. r2); unset disables the upload
  R2_BUCKET_PATH          bucket/folder on that remote (e.g. eva-backups/prod)
  RCLONE_BIN              rclone executable (default: rclone on PATH)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("eva.backup")

ARCHIVE_PREFIX = "eva-backup-"
ARCHIVE_SUFFIX = ".tar.gz"
ARCHIVE_RE = re.compile(r"^eva-backup-(\d{8}T\d{6}Z)\.tar\.gz$")
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
# Chromium rebuilds these on start; they are large, churn constantly and hold nothing of the login.
SESSION_SKIP_DIRS = {"Cache", "Code Cache", "GPUCache", "DawnCache", "GrShaderCache", "ShaderCache"}
SESSION_SKIP_FILES = {"SingletonLock", "SingletonSocket", "SingletonCookie", "LOCK"}
HEARTBEAT_FILE = Path(os.environ.get("BACKUP_HEARTBEAT_FILE", "/tmp/eva-backup.heartbeat"))  # noqa: S108


class BackupError(RuntimeError):
    """A step failed; the message says which and why (never with a password in it)."""


# ----------------------------------------------------------------------------- helpers


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BackupError(f"{name} must be an integer, got {raw!r}") from exc


def pg_tool(name: str) -> str:
    bin_dir = os.environ.get("PG_BIN_DIR", "").strip()
    if bin_dir:
        candidate = Path(bin_dir) / name
        if not candidate.exists():
            raise BackupError(f"{name} not found in PG_BIN_DIR={bin_dir}")
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} not found on PATH (set PG_BIN_DIR)")
    return found


@dataclass
class PgTarget:
    """A libpq URL with the password moved to PGPASSWORD, so it never shows in `ps` or logs."""

    url: str
    password: str | None
    dbname: str

    @classmethod
    def from_url(cls, url: str) -> PgTarget:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise BackupError("DATABASE_URL must start with postgres:// or postgresql://")
        password = urllib.parse.unquote(parts.password) if parts.password else None
        netloc = parts.hostname or ""
        if parts.hostname and ":" in parts.hostname:  # IPv6 literal
            netloc = f"[{parts.hostname}]"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        dbname = urllib.parse.unquote(parts.path.lstrip("/")) or (parts.username or "postgres")
        clean = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        return cls(url=clean, password=password, dbname=dbname)

    def with_database(self, dbname: str) -> PgTarget:
        parts = urllib.parse.urlsplit(self.url)
        path = "/" + urllib.parse.quote(dbname, safe="")
        url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
        return PgTarget(url=url, password=self.password, dbname=dbname)

    def env(self) -> dict[str, str]:
        environment = dict(os.environ)
        if self.password is not None:
            environment["PGPASSWORD"] = self.password
        return environment


def run(cmd: list[str], *, env: dict[str, str] | None = None, what: str) -> str:
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(
            f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def psql(target: PgTarget, sql: str) -> str:
    cmd = [pg_tool("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", target.url]
    return run([*cmd, "-c", sql], env=target.env(), what="psql")


TABLES_SQL = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE'
  AND table_schema NOT IN ('pg_catalog', 'information_schema')
  AND table_schema NOT LIKE 'pg\\_%'
ORDER BY 1, 2
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def table_row_counts(target: PgTarget) -> dict[str, dict[str, int]]:
    """{schema: {table: exact row count}} for every user table in the database.

    Exact count(*) per table (not the planner's estimates), in one UNION ALL statement so every
    count comes from the same snapshot.
    """
    tables = [line.split("|") for line in psql(target, TABLES_SQL).splitlines() if line.strip()]
    counts: dict[str, dict[str, int]] = {}
    if not tables:
        return counts
    # Names come from the catalog and are quoted; nothing here is user input.
    selects = [
        f"SELECT {quote_literal(s)}, {quote_literal(t)}, count(*) FROM {quote_ident(s)}.{quote_ident(t)}"  # noqa: S608, E501
        for s, t in tables
    ]
    for line in psql(target, "\nUNION ALL\n".join(selects)).splitlines():
        if line.strip():
            schema, table, rows = line.rsplit("|", 2)
            counts.setdefault(schema, {})[table] = int(rows)
    return counts


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- Redis


class RespClient:
    """The few Redis commands we need, spoken over a plain socket (no redis-cli in the image)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "redis":
            raise BackupError("REDIS_URL must start with redis:// for the backup step")
        self.sock = socket.create_connection(
            (parts.hostname or "localhost", parts.port or 6379), timeout
        )
        self.reader = self.sock.makefile("rb")
        if parts.password:
            password = urllib.parse.unquote(parts.password)
            if parts.username:
                self.command("AUTH", urllib.parse.unquote(parts.username), password)
            else:
                self.command("AUTH", password)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()

    def command(self, *args: str) -> Any:  # RESP replies are untyped by nature
        payload = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            payload.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(payload))
        return self._read()

    def _read(self) -> Any:
        line = self.reader.readline()
        if not line:
            raise BackupError("Redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self.reader.read(length + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._read() for _ in range(count)]
        raise BackupError(f"unexpected Redis reply {line[:40]!r}")


class RedisReplyError(BackupError):
    pass


def _info_field(info: str, name: str) -> str:
    match = re.search(rf"^{name}:(.*)$", info, re.MULTILINE)
    return match.group(1).strip() if match else ""


def redis_snapshot(url: str, data_dir: str | None, dest: Path, timeout: float = 300.0) -> dict:
    """Trigger a BGSAVE, wait until it is on disk, and copy the RDB file to dest/.

    The RDB written by BGSAVE is a consistent point-in-time image (fork + copy-on-write), so Redis
    keeps serving while we copy; the AOF files are not copied because they may be mid-append.
    """
    client = RespClient(url)
    try:
        before = int(client.command("LASTSAVE"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.command("BGSAVE")
                break
            except RedisReplyError as exc:
                # Another save or an AOF rewrite is running: wait for it and ask again.
                if "in progress" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        while True:
            info = str(client.command("INFO", "persistence"))
            if _info_field(info, "rdb_bgsave_in_progress") == "0":
                if _info_field(info, "rdb_last_bgsave_status") != "ok":
                    raise BackupError("Redis BGSAVE failed (rdb_last_bgsave_status is not ok)")
                if int(client.command("LASTSAVE")) >= before:
                    break
            if time.monotonic() > deadline:
                raise BackupError(f"Redis BGSAVE did not finish within {timeout:.0f}s")
            time.sleep(0.2)
        server_dir, dbfilename = None, "dump.rdb"
        with contextlib.suppress(RedisReplyError):  # CONFIG may be renamed/disabled by ACL
            server_dir = client.command("CONFIG", "GET", "dir")[1]
            dbfilename = client.command("CONFIG", "GET", "dbfilename")[1]
        version = _info_field(str(client.command("INFO", "server")), "redis_version")
    finally:
        client.close()
    source_dir = Path(data_dir or server_dir or "")
    source = source_dir / str(dbfilename)
    if not source.is_file():
        raise BackupError(f"RDB file not found at {source} (set REDIS_DATA_DIR)")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / str(dbfilename)
    shutil.copyfile(source, target)  # a finished BGSAVE is renamed into place atomically
    with target.open("rb") as handle:
        # Redis writes "REDIS<version>"; Valkey 8.1+ may write "VALKEY<version>".
        if not handle.read(6).startswith((b"REDIS", b"VALKEY")):
            raise BackupError(f"{source} does not look like an RDB file")
    return {"file": f"redis/{dbfilename}", "bytes": target.stat().st_size, "redis_version": version}


# ----------------------------------------------------------------------------- archive


class _ExactSize(io.RawIOBase):
    """Reads exactly `size` bytes from a file that may change while we read it.

    Session and media folders are archived live; a file that shrinks is zero-padded and one that
    grows is cut at the size tar already recorded, instead of aborting the whole backup.
    """

    def __init__(self, handle: io.BufferedReader, size: int) -> None:
        self.handle, self.remaining, self.changed = handle, size, False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        n = self.remaining if n < 0 else min(n, self.remaining)
        data = self.handle.read(n)
        if len(data) < n:
            self.changed = True
            data += b"\0" * (n - len(data))
        self.remaining -= len(data)
        return data


def add_tree(tar: tarfile.TarFile, root: Path, arcroot: str, *, session: bool) -> dict:
    """Add a live folder to the archive; returns {files, bytes, changed_while_reading}."""
    stats = {"files": 0, "bytes": 0, "changed_while_reading": 0}
    if not root.is_dir():
        raise BackupError(f"folder to back up does not exist: {root}")
    for dirpath, dirnames, filenames in os.walk(root):
        if session:
            dirnames[:] = [d for d in dirnames if d not in SESSION_SKIP_DIRS]
        rel_dir = Path(dirpath).relative_to(root)
        dir_info = tar.gettarinfo(dirpath, arcname=str(Path(arcroot) / rel_dir))
        tar.addfile(dir_info)
        for name in sorted(filenames):
            if session and name in SESSION_SKIP_FILES:
                continue
            path = Path(dirpath) / name
            arcname = str(Path(arcroot) / rel_dir / name)
            try:
                if path.is_symlink() or not path.is_file():
                    continue  # sockets, fifos, links: nothing to restore
                with path.open("rb") as handle:
                    info = tar.gettarinfo(arcname=arcname, fileobj=handle)
                    reader = _ExactSize(handle, info.size)
                    tar.addfile(info, reader)
            except FileNotFoundError:
                continue  # removed between listing and reading (Chromium temp files)
            stats["files"] += 1
            stats["bytes"] += info.size
            stats["changed_while_reading"] += int(reader.changed)
    return stats


@dataclass
class BackupConfig:
    backup_dir: Path
    database_url: str | None
    redis_url: str | None = None
    redis_data_dir: str | None = None
    session_dir: Path | None = None
    media_dir: Path | None = None
    retention_days: int = 7
    remote_name: str | None = None
    remote_path: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> BackupConfig:
        def path_or_none(name: str) -> Path | None:
            raw = os.environ.get(name, "").strip()
            return Path(raw) if raw else None

        return cls(
            backup_dir=Path(os.environ.get("BACKUP_DIR", "/backups")),
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            redis_data_dir=os.environ.get("REDIS_DATA_DIR") or None,
            session_dir=path_or_none("BACKUP_SESSION_DIR"),
            media_dir=path_or_none("BACKUP_MEDIA_DIR"),
            retention_days=env_int("BACKUP_RETENTION_DAYS", 7),
            remote_name=os.environ.get("R2_REMOTE_NAME", "").strip() or None,
            remote_path=os.environ.get("R2_BUCKET_PATH", "").strip().rstrip("/") or None,
        )


def make_backup(config: BackupConfig, now: dt.datetime | None = None) -> Path:
    """Write one archive and its .sha256 into config.backup_dir; returns the archive path.

    The archive appears under its final name only when complete (written as .partial, renamed).
    """
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime(TIMESTAMP_FORMAT)
    config.backup_dir.mkdir(parents=True, exist_ok=True)
    final = config.backup_dir / f"{ARCHIVE_PREFIX}{stamp}{ARCHIVE_SUFFIX}"
    partial = final.with_name(final.name + ".partial")
    manifest: dict = {"format": 1, "created_at": now.isoformat(), "members": {}}

    with tempfile.TemporaryDirectory(prefix="eva-backup-", dir=config.backup_dir) as tmp:
        staging = Path(tmp)
        if config.database_url:
            manifest["database"] = dump_database(config.database_url, staging / "db")
        if config.redis_url:
            log.info("redis: BGSAVE and copy")
            manifest["redis"] = redis_snapshot(
                config.redis_url, config.redis_data_dir, staging / "redis"
            )
        for sub in ("db", "redis"):
            for path in sorted((staging / sub).glob("*")) if (staging / sub).exists() else []:
                manifest["members"][f"{sub}/{path.name}"] = sha256_file(path)

        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for sub in ("db", "redis"):
                if (staging / sub).exists():
                    tar.add(staging / sub, arcname=sub)
            volumes: dict = {}
            for label, folder in (("session", config.session_dir), ("media", config.media_dir)):
                if folder is not None:
                    log.info("volume %s: archiving %s", label, folder)
                    volumes[label] = add_tree(
                        tar, folder, f"volumes/{label}", session=label == "session"
                    )
            manifest["volumes"] = volumes
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), int(now.timestamp())
            tar.addfile(info, io.BytesIO(data))

    digest = sha256_file(partial)
    partial.rename(final)
    final.with_name(final.name + ".sha256").write_text(f"{digest}  {final.name}\n")
    log.info("backup written: %s (%d bytes, sha256 %s)", final, final.stat().st_size, digest)
    return final


def dump_database(database_url: str, out_dir: Path) -> dict:
    target = PgTarget.from_url(database_url)
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("database: pg_dump -Fc %s", target.dbname)
    run(
        [
            pg_tool("pg_dump"),
            "-Fc",
            "--no-password",
            "-f",
            str(out_dir / "database.dump"),
            "-d",
            target.url,
        ],
        env=target.env(),
        what="pg_dump",
    )
    log.info("database: pg_dumpall --globals-only")
    run(
        [
            pg_tool("pg_dumpall"),
            "--globals-only",
            "--no-password",
            "-f",
            str(out_dir / "globals.sql"),
            "-d",
            target.url,
        ],
        env=target.env(),
        what="pg_dumpall --globals-only",
    )
    version = run([pg_tool("pg_dump"), "--version"], what="pg_dump --version").strip()
    # Counted after the dump: on a busy database they can differ slightly from the dump's
    # snapshot, so restore reports differences rather than failing on them by default.
    counts = table_row_counts(target)
    return {
        "dbname": target.dbname,
        "pg_dump_version": version,
        "row_counts": counts,
        "schemas": sorted(counts),
    }


# ----------------------------------------------------------------------------- upload and rotation


def rclone_bin() -> str:
    configured = os.environ.get("RCLONE_BIN", "").strip()
    found = configured or shutil.which("rclone")
    if not found:
        raise BackupError("rclone not found (install it or set RCLONE_BIN)")
    return found


def remote_dir(config: BackupConfig) -> str:
    return f"{config.remote_name}:{config.remote_path or ''}"


def upload(config: BackupConfig, archive: Path) -> None:
    """Copy the archive and its .sha256 to the remote, then prove the remote copy matches."""
    rclone = rclone_bin()
    dest = remote_dir(config)
    for path in (archive, archive.with_name(archive.name + ".sha256")):
        run(
            [rclone, "copyto", str(path), f"{dest.rstrip('/')}/{path.name}"],
            what=f"rclone copy {path.name}",
        )
    # `check --one-way` compares size and, where the backend has one, the hash of the uploaded
    # object against the local file; --download compares the bytes when no common hash exists.
    check = [rclone, "check", str(archive.parent), dest, "--one-way", "--include", archive.name]
    if os.environ.get("R2_VERIFY_DOWNLOAD", "").lower() in ("1", "true", "yes"):
        check.append("--download")
    run(check, what="rclone check (upload verification)")
    log.info("upload verified: %s/%s", dest.rstrip("/"), archive.name)


def archive_time(name: str) -> dt.datetime | None:
    match = ARCHIVE_RE.match(name)
    if not match:
        return None
    return dt.datetime.strptime(match.group(1), TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)


def expired(names: list[str], retention_days: int, now: dt.datetime) -> list[str]:
    """Archive names (and their .sha256) older than the retention; other files are never listed.

    Age comes from the timestamp in the name, not the file's mtime, so a copy that was
    re-uploaded or touched keeps its real age.
    """
    cutoff = now - dt.timedelta(days=retention_days)
    doomed = []
    for name in names:
        base = name[: -len(".sha256")] if name.endswith(".sha256") else name
        created = archive_time(base)
        if created is not None and created < cutoff:
            doomed.append(name)
    return sorted(doomed)


def rotate(config: BackupConfig, now: dt.datetime | None = None) -> dict[str, list[str]]:
    now = now or dt.datetime.now(dt.UTC)
    removed: dict[str, list[str]] = {"local": [], "remote": []}
    if config.backup_dir.is_dir():
        for name in expired(
            [p.name for p in config.backup_dir.iterdir()], config.retention_days, now
        ):
            (config.backup_dir / name).unlink()
            removed["local"].append(name)
    if config.remote_name:
        rclone = rclone_bin()
        dest = remote_dir(config)
        listing = run([rclone, "lsf", "--files-only", dest], what="rclone lsf").splitlines()
        for name in expired([line.strip() for line in listing], config.retention_days, now):
            run(
                [rclone, "deletefile", f"{dest.rstrip('/')}/{name}"],
                what=f"rclone deletefile {name}",
            )
            removed["remote"].append(name)
    log.info("rotation (keep %d days): removed %s", config.retention_days, removed)
    return removed


def run_once(config: BackupConfig) -> Path:
    archive = make_backup(config)
    if config.remote_name:
        upload(config, archive)
    rotate(config)
    return archive


# ----------------------------------------------------------------------------- scheduler


def next_run(now: dt.datetime, hhmm: str) -> dt.datetime:
    hour, minute = (int(x) for x in hhmm.split(":"))
    candidate = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + dt.timedelta(days=1)


def schedule(config: BackupConfig) -> None:
    """Daily loop. A failed run is logged and retried the next day; the loop itself never dies."""
    at = os.environ.get("BACKUP_SCHEDULE_UTC", "03:00")
    next_run(dt.datetime.now(dt.UTC), at)  # validate HH:MM before looping
    run_now = os.environ.get("BACKUP_RUN_ON_START", "").lower() in ("1", "true", "yes")
    while True:
        now = dt.datetime.now(dt.UTC)
        due = now if run_now else next_run(now, at)
        run_now = False
        log.info("next backup at %s", due.isoformat())
        while dt.datetime.now(dt.UTC) < due:
            HEARTBEAT_FILE.touch()
            # Short sleeps: the container's healthcheck watches the heartbeat, and a clock jump
            # (NTP, suspend) cannot push the run a whole day away.
            time.sleep(min(30.0, max(0.0, (due - dt.datetime.now(dt.UTC)).total_seconds())))
        try:
            run_once(config)
        except Exception:
            log.exception("backup run failed")
        HEARTBEAT_FILE.touch()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("backup", "schedule", "rotate"))
    args = parser.parse_args(argv)
    config = BackupConfig.from_env()
    try:
        if args.command == "backup":
            print(run_once(config))
        elif args.command == "rotate":
            rotate(config)
        else:
            schedule(config)
    except BackupError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
