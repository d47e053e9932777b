"""Media storage: the files customers send (the gateway stores them) and the documents tenants
upload.

``EVA_MEDIA_STORAGE`` picks one backend for both sides of the WhatsApp stream:

* ``local``: ``MEDIA_ROOT``, a folder the gateway and Django share (one machine, or a volume
  both containers mount);
* ``s3``: an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, ...), for deployments where the
  gateway, the web servers and the workers run on different hosts.

Keys are the same in both, relative to the folder or the bucket's root, and start with the
tenant's schema: ``<schema>/whatsapp/<session>/<yyyy>/<mm>/<sha256>.ogg`` (written by the
gateway, docs/streams.md), ``<schema>/knowledge/<uuid>.pdf`` (uploads, through Django's default
storage, which adds the schema itself).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.core.files.storage import FileSystemStorage, Storage
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.utils.translation import gettext as _
from storages.backends.s3 import S3Storage

from eva.db import current_schema


class MediaStorageUnavailable(Exception):
    """The media storage did not answer as it should (a bucket unreachable or refusing these
    credentials, a folder not writable): nothing was stored; worth trying again later."""


# What a storage raises when it fails to answer, as opposed to a file that is not there
# (FileNotFoundError): the bucket's service unreachable, or refusing; the local disk refusing.
STORAGE_ERRORS: tuple[type[Exception], ...] = (BotoCoreError, ClientError, PermissionError)


def _client_config(*, timeout: float, attempts: int) -> Config:
    return Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
        signature_version="s3v4",
        # Other S3-compatible services (MinIO, R2 behind a custom endpoint) expect the bucket's
        # name in the path, not in the host name.
        s3={"addressing_style": "path" if settings.EVA_S3_ENDPOINT_URL else "auto"},
    )


def s3_options() -> dict[str, Any]:
    """The bucket of ``EVA_S3_*`` as S3Storage options."""
    return {
        "bucket_name": settings.EVA_S3_BUCKET,
        "endpoint_url": settings.EVA_S3_ENDPOINT_URL,
        "region_name": settings.EVA_S3_REGION,
        "access_key": settings.EVA_S3_ACCESS_KEY_ID,
        "secret_key": settings.EVA_S3_SECRET_ACCESS_KEY,
        "client_config": _client_config(timeout=30.0, attempts=3),
        # Files are private: the bucket's own policy decides, never a public-read ACL.
        "default_acl": None,
        # A second upload under a taken name gets a new name instead of replacing the file.
        "file_overwrite": False,
    }


class TenantS3Storage(S3Storage):
    """Django's default storage on S3: each tenant's files under ``<schema>/`` in the bucket,
    as ``TenantFileSystemStorage`` keeps them under ``MEDIA_ROOT/<schema>/``."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**{**s3_options(), **options})

    @property
    def location(self) -> str:
        schema = current_schema()
        return f"{self._base_location}/{schema}" if self._base_location else schema

    @location.setter
    def location(self, value: str) -> None:
        self._base_location = (value or "").strip("/")


@functools.cache
def _check_client(timeout: float) -> Any:
    # Building a boto3 client costs tens of milliseconds of CPU: one per process, not one per
    # readiness probe.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.EVA_S3_ENDPOINT_URL,
        region_name=settings.EVA_S3_REGION,
        aws_access_key_id=settings.EVA_S3_ACCESS_KEY_ID,
        aws_secret_access_key=settings.EVA_S3_SECRET_ACCESS_KEY,
        config=_client_config(timeout=timeout, attempts=1),
    )


def bucket_check(*, timeout: float) -> None:
    """Raise unless the bucket exists and the credentials may use it (within ``timeout``
    seconds, one attempt: readiness probes must answer fast)."""
    _check_client(timeout).head_bucket(Bucket=settings.EVA_S3_BUCKET)


@functools.cache
def shared_storage() -> Storage:
    """The storage root the gateway writes to: event media keys are relative to it (they carry
    the tenant's schema themselves)."""
    if settings.EVA_MEDIA_STORAGE == "s3":
        return S3Storage(**s3_options())
    return FileSystemStorage(location=settings.MEDIA_ROOT)


@receiver(setting_changed)
def _forget_storage(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("EVA_S3_") or setting in ("EVA_MEDIA_STORAGE", "MEDIA_ROOT"):
        shared_storage.cache_clear()
        _check_client.cache_clear()


def tenant_media_key(key: object) -> str:
    """``key`` (from a message's media reference) if it lies in the current tenant's media;
    raises ValueError otherwise: a reference of one tenant must never read another's files."""
    relative = PurePosixPath(str(key or ""))
    if (
        not relative.parts
        or relative.is_absolute()
        or ".." in relative.parts
        or relative.parts[0] != current_schema()
    ):
        raise ValueError("the media reference is outside this tenant's media")
    return relative.as_posix()


@contextmanager
def local_file(storage: Storage, name: str) -> Iterator[Path]:
    """A path to a stored file, for what reads files by path (the parser sandbox,
    faster-whisper): the file itself on local storage; else a temporary copy, removed on exit.
    Raises FileNotFoundError when the file is not stored."""
    try:
        path = storage.path(name)
    except NotImplementedError:
        pass
    else:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="eva-media-") as folder:
        copy = Path(folder) / (PurePosixPath(name).name or "file")
        with storage.open(name, "rb") as stored, copy.open("wb") as local:
            shutil.copyfileobj(stored, local, 1024 * 1024)
        yield copy


def served(response: HttpResponseBase) -> HttpResponseBase:
    """``response`` (a stored file sent to a browser) with a sandbox: whatever a customer or a
    tenant uploaded never runs as a page of the dashboard."""
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


def unavailable_response() -> HttpResponse:
    """What a view serving a stored file answers when the storage does not (logged by the
    caller)."""
    return HttpResponse(
        _("The media storage is not answering. Try again soon."),
        status=503,
        content_type="text/plain; charset=utf-8",
    )
