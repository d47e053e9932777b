"""Fixtures of the knowledge tests: logged-in clients, stored documents, committed data for
tests that involve the real Celery worker."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator

import pytest
from django.core.files.base import ContentFile
from django.test import Client


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


def upload(client: Client, name: str, data: bytes, **extra: str):
    return client.post("/api/v1/documents/", {"file": ContentFile(data, name=name), **extra})


def stored_document(data: bytes, name: str, kind: str):
    """A pending document whose file is stored as-is, bypassing the upload checks, to prove the
    worker's own guards (documents may also arrive by other paths, or limits may change)."""
    from apps.knowledge.models import Document

    document = Document(
        title=name,
        original_name=name,
        kind=kind,
        size=len(data),
        sha256=hashlib.sha256(data + uuid.uuid4().bytes).hexdigest(),
    )
    document.file.save(f"{uuid.uuid4().hex}.{kind}", ContentFile(data), save=False)
    document.save()
    return document


@pytest.fixture
def media(settings, tmp_path):
    """Files stored by in-process tests go to a temporary media root.

    django-tenants' storage caches MEDIA_ROOT/<schema> and only forgets it when
    MULTITENANT_RELATIVE_MEDIA_ROOT changes, so the cache is dropped by hand on both sides.
    """
    from django.core.files.storage import storages

    storage = storages["default"]
    storage.__dict__.pop("relative_media_root", None)
    settings.MEDIA_ROOT = tmp_path
    yield tmp_path
    storage.__dict__.pop("relative_media_root", None)


class HttpClient:
    """A browser-like HTTP client for the live server (real sockets, its own DB connection, so
    what it writes is committed and a worker process sees it). Session login, CSRF header."""

    def __init__(self, port: int, persona) -> None:
        import http.cookiejar
        import urllib.request

        self.base = f"http://127.0.0.1:{port}"
        self.host = persona.host
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.request("GET", "/login/")
        status, _body = self.request(
            "POST",
            "/login/",
            form={"username": persona.email, "password": persona.password},
            csrf_field=True,
        )
        assert status in (200, 302)
        assert any(cookie.name == "sessionid" for cookie in self.cookies)

    def _csrf(self) -> str:
        return next((c.value or "") for c in self.cookies if c.name == "csrftoken")

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict | None = None,
        json_body: dict | None = None,
        files: dict | None = None,
        csrf_field: bool = False,
    ):
        import json
        import urllib.error
        import urllib.parse
        import urllib.request

        headers = {"Host": self.host, "Referer": f"http://{self.host}/"}
        data: bytes | None = None
        if method != "GET":
            headers["X-CSRFToken"] = self._csrf()
        if files is not None:
            boundary = uuid.uuid4().hex
            parts = []
            for name, value in (form or {}).items():
                parts.append(
                    f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                    f"{value}\r\n".encode()
                )
            for name, (filename, content) in files.items():
                parts.append(
                    (
                        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                        f'filename="{filename}"\r\n'
                        "Content-Type: application/octet-stream\r\n\r\n"
                    ).encode()
                    + content
                    + b"\r\n"
                )
            data = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif form is not None:
            fields = dict(form)
            if csrf_field:
                fields["csrfmiddlewaretoken"] = self._csrf()
            data = urllib.parse.urlencode(fields).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        # Always http://127.0.0.1:<port>: no user-controlled scheme.
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with self.opener.open(req, timeout=30) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode("utf-8", "replace")


@pytest.fixture
def http_a(live_server_port, world) -> Iterator[HttpClient]:
    """Owner A over real HTTP; every document of A and B is deleted through the API afterwards
    (the live server commits, so the test transaction cannot roll these rows back)."""
    client = HttpClient(live_server_port, world.owner_a)
    yield client
    for persona in (world.owner_a, world.owner_b):
        cleaner = HttpClient(live_server_port, persona)
        while True:
            _status, listing = cleaner.request("GET", "/api/v1/documents/")
            if not listing["results"]:
                break
            for item in listing["results"]:
                cleaner.request("DELETE", f"/api/v1/documents/{item['id']}/")


@pytest.fixture
def http_b(live_server_port, world) -> HttpClient:
    return HttpClient(live_server_port, world.owner_b)
