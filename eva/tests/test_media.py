"""Media storage on an S3-compatible bucket (EVA_MEDIA_STORAGE=s3, eva/media.py), against a real
S3 server (``rclone serve s3``, see the ``s3_server`` fixture): each tenant's files under its
own prefix, invisible to the others; readiness says whether the bucket answers; a
misconfiguration stops the process at start with the variable's name."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import SuspiciousOperation
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tenants.utils import tenant_context

from conftest import ROOT

pytestmark = pytest.mark.django_db


def keys(server, bucket: str) -> list[str]:
    return [
        item["Key"] for item in server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    ]


def test_uploads_land_under_the_tenants_prefix_and_stay_invisible_to_others(world, s3_media):
    server, bucket = s3_media
    with tenant_context(world.tenant_a):
        name = default_storage.save("knowledge/prices.csv", ContentFile(b"sku,price\nA1,10\n"))
        again = default_storage.save("knowledge/prices.csv", ContentFile(b"sku,price\nB2,20\n"))
        assert again != name  # a taken name gets a new one: nothing is overwritten
        assert default_storage.open(name).read() == b"sku,price\nA1,10\n"
        with pytest.raises(SuspiciousOperation):
            default_storage.open("../beta/knowledge/prices.csv")
    assert sorted(keys(server, bucket)) == sorted([f"alpha/{name}", f"alpha/{again}"])

    with tenant_context(world.tenant_b):
        assert not default_storage.exists(name)
        with pytest.raises(FileNotFoundError):
            default_storage.open(name)


def test_local_file_is_a_temporary_copy_of_an_object(world, s3_media):
    from eva.media import local_file, shared_storage

    server, bucket = s3_media
    server.client().put_object(Bucket=bucket, Key="alpha/whatsapp/s/a.pdf", Body=b"%PDF-1.4 x")
    with local_file(shared_storage(), "alpha/whatsapp/s/a.pdf") as path:
        assert path.read_bytes() == b"%PDF-1.4 x" and path.name == "a.pdf"
    assert not path.exists()
    with pytest.raises(FileNotFoundError), local_file(shared_storage(), "alpha/none.pdf"):
        pass


def test_readiness_says_whether_the_bucket_answers(s3_media, settings):
    from apps.ops.health import readiness

    _server, bucket = s3_media
    _ok, checks = readiness()
    assert checks["media"] == {
        "ok": True,
        "detail": f"bucket {bucket!r} reachable",
        "ms": checks["media"]["ms"],
    }

    settings.EVA_S3_SECRET_ACCESS_KEY = "not-the-secret"
    ok, checks = readiness()
    assert not ok and not checks["media"]["ok"]
    assert "403" in checks["media"]["detail"] or "Forbidden" in checks["media"]["detail"]

    settings.EVA_S3_SECRET_ACCESS_KEY = s3_media[0].secret_key
    settings.EVA_S3_BUCKET = "no-such-bucket"
    ok, checks = readiness()
    assert not ok and "404" in checks["media"]["detail"]


def test_readiness_of_the_local_folder(settings, tmp_path):
    from apps.ops.health import readiness

    settings.MEDIA_ROOT = tmp_path / "media"
    _ok, checks = readiness()
    assert checks["media"]["ok"] and checks["media"]["detail"] == "folder writable"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"EVA_MEDIA_STORAGE": "s3"}, "EVA_MEDIA_STORAGE=s3 needs EVA_S3_BUCKET"),
        ({"EVA_MEDIA_STORAGE": "ftp"}, "EVA_MEDIA_STORAGE must be one of local, s3"),
        (
            {"EVA_MEDIA_STORAGE": "s3", "EVA_S3_BUCKET": "b", "EVA_S3_ACCESS_KEY_ID": "k"},
            "set both EVA_S3_ACCESS_KEY_ID and EVA_S3_SECRET_ACCESS_KEY, or neither",
        ),
        (
            {"EVA_MEDIA_STORAGE": "s3", "EVA_S3_BUCKET": "b", "EVA_S3_ENDPOINT_URL": "minio:9000"},
            "EVA_S3_ENDPOINT_URL must be a URL starting with http:// or https://",
        ),
    ],
)
def test_a_bad_media_configuration_stops_the_process_at_start(environment, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EVA_S3_", "EVA_MEDIA"))}
    completed = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=clean | environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert message in completed.stderr
