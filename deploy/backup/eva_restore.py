#!/usr/bin/env python3
"""Restore an EVA backup archive into a fresh database and report per-schema row counts.

  eva_restore.py ARCHIVE --target-db NAME [--with-globals] [--no-owner] [--extract-files DIR]
                 [--json] [--strict]
  eva_restore.py --list            # archives in BACKUP_DIR, newest first

DATABASE_URL names the server (any existing database on it, used to run CREATE DATABASE); the
archive is restored into NAME, which must not exist yet, so a restore never overwrites the live
database. Point the application at NAME afterwards (see docs/operations.md).

Before restoring, the archive's .sha256 (when beside it) and every member's sha256 listed in its
manifest are checked. After restoring, the row count of every table is compared with the counts
recorded at backup time; differences are printed, and make the exit code 3 with --strict.

--with-globals replays `pg_dumpall --globals-only` first (roles, tablespaces): for a brand-new
server only, because on the live server it would reset existing roles' passwords to the old ones.
--extract-files DIR unpacks redis/ and volumes/ (WhatsApp sessions, media) there, for copying
into the volumes while those services are stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from eva_backup import (
    ARCHIVE_RE,
    BackupError,
    PgTarget,
    pg_tool,
    psql,
    run,
    sha256_file,
    table_row_counts,
)


def verify_archive(archive: Path) -> dict:
    """Check the archive against its .sha256 and its members against the manifest; return it."""
    sidecar = archive.with_name(archive.name + ".sha256")
    if sidecar.exists():
        expected = sidecar.read_text().split()[0]
        if sha256_file(archive) != expected:
            raise BackupError(f"{archive.name}: sha256 does not match {sidecar.name}")
    with tarfile.open(archive, "r:gz") as tar:
        manifest_file = tar.extractfile("manifest.json")
        if manifest_file is None:
            raise BackupError(f"{archive.name}: no manifest.json")
        manifest = json.load(manifest_file)
        for member, digest in manifest.get("members", {}).items():
            handle = tar.extractfile(member)
            if handle is None:
                raise BackupError(f"{archive.name}: {member} listed in the manifest is missing")
            actual = hashlib.sha256()
            while block := handle.read(1 << 20):
                actual.update(block)
            if actual.hexdigest() != digest:
                raise BackupError(f"{archive.name}: {member} is corrupt (sha256 mismatch)")
    return manifest


def _safe_members(tar: tarfile.TarFile, prefixes: tuple[str, ...]) -> list[tarfile.TarInfo]:
    members = []
    for member in tar.getmembers():
        name = member.name
        if name.startswith("/") or ".." in Path(name).parts:
            raise BackupError(f"refusing unsafe path in archive: {name}")
        if name.startswith(prefixes) and (member.isfile() or member.isdir()):
            members.append(member)
    return members


def restore(
    archive: Path,
    server_url: str,
    target_db: str,
    *,
    with_globals: bool = False,
    no_owner: bool = False,
    extract_files: Path | None = None,
) -> dict:
    """Restore ARCHIVE into the new database TARGET_DB; returns the restored row counts and diff."""
    manifest = verify_archive(archive)
    if "database" not in manifest:
        raise BackupError(f"{archive.name} holds no database dump")
    server = PgTarget.from_url(server_url)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", target_db):
        raise BackupError("--target-db must be a plain identifier (letters, digits, _)")
    sql = f"SELECT 1 FROM pg_database WHERE datname = '{target_db}'"  # noqa: S608 - checked above
    exists = psql(server, sql)
    if exists.strip():
        raise BackupError(f"database {target_db!r} already exists; restore only into a fresh one")

    with tempfile.TemporaryDirectory(prefix="eva-restore-") as tmp:
        work = Path(tmp)
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(work, members=_safe_members(tar, ("db/",)))  # noqa: S202 - members vetted
            if extract_files is not None:
                extract_files.mkdir(parents=True, exist_ok=True)
                members = _safe_members(tar, ("redis/", "volumes/"))
                tar.extractall(extract_files, members=members)  # noqa: S202 - members vetted
        if with_globals:
            # Roles that already exist make CREATE ROLE fail; the ALTERs after it still apply.
            run(
                [
                    pg_tool("psql"),
                    "-X",
                    "-q",
                    "-d",
                    server.url,
                    "-f",
                    str(work / "db" / "globals.sql"),
                ],
                env=server.env(),
                what="psql globals.sql",
            )
        quoted = '"' + target_db.replace('"', '""') + '"'
        psql(server, f"CREATE DATABASE {quoted} TEMPLATE template0")
        target = server.with_database(target_db)
        cmd = [pg_tool("pg_restore"), "--exit-on-error", "--no-password", "-d", target.url]
        if no_owner:
            cmd += ["--no-owner", "--no-acl"]
        run([*cmd, str(work / "db" / "database.dump")], env=target.env(), what="pg_restore")

    restored = table_row_counts(target)
    expected = manifest["database"].get("row_counts", {})
    differences = []
    for schema in sorted(set(expected) | set(restored)):
        for table in sorted(set(expected.get(schema, {})) | set(restored.get(schema, {}))):
            before = expected.get(schema, {}).get(table)
            after = restored.get(schema, {}).get(table)
            if before != after:
                differences.append(
                    {"schema": schema, "table": table, "backup": before, "restored": after}
                )
    return {
        "archive": archive.name,
        "database": target_db,
        "row_counts": restored,
        "differences": differences,
    }


def format_report(report: dict) -> str:
    lines = [f"Restored {report['archive']} into database {report['database']!r}", ""]
    lines.append(f"{'schema':<40} {'tables':>7} {'rows':>12}")
    total = 0
    for schema, tables in sorted(report["row_counts"].items()):
        rows = sum(tables.values())
        total += rows
        lines.append(f"{schema:<40} {len(tables):>7} {rows:>12}")
    lines.append(f"{'TOTAL':<40} {'':>7} {total:>12}")
    if report["differences"]:
        lines.append("")
        lines.append("Row counts that differ from the ones recorded at backup time:")
        for diff in report["differences"]:
            where = f"{diff['schema']}.{diff['table']}"
            lines.append(f"  {where}: backup={diff['backup']} restored={diff['restored']}")
    else:
        lines.append("")
        lines.append("Every table has the row count recorded at backup time.")
    return "\n".join(lines)


def list_archives(backup_dir: Path) -> list[Path]:
    if not backup_dir.is_dir():
        return []
    return sorted((p for p in backup_dir.iterdir() if ARCHIVE_RE.match(p.name)), reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Restore an EVA backup into a fresh database.")
    parser.add_argument("archive", nargs="?", type=Path)
    parser.add_argument("--target-db", help="name of the new database to create and restore into")
    parser.add_argument(
        "--with-globals", action="store_true", help="replay roles first (new server only)"
    )
    parser.add_argument("--no-owner", action="store_true", help="restore without owners and grants")
    parser.add_argument("--extract-files", type=Path, help="also unpack redis/ and volumes/ here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 3 when row counts differ")
    parser.add_argument("--list", action="store_true", help="list archives in BACKUP_DIR")
    args = parser.parse_args(argv)

    if args.list:
        for path in list_archives(Path(os.environ.get("BACKUP_DIR", "/backups"))):
            print(path)
        return 0
    if args.archive is None or not args.target_db:
        parser.error("ARCHIVE and --target-db are required")
    server_url = os.environ.get("DATABASE_URL")
    if not server_url:
        parser.error("DATABASE_URL must name the PostgreSQL server to restore into")
    try:
        report = restore(
            args.archive,
            server_url,
            args.target_db,
            with_globals=args.with_globals,
            no_owner=args.no_owner,
            extract_files=args.extract_files,
        )
    except BackupError as exc:
        print(f"restore failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else format_report(report))
    return 3 if args.strict and report["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
