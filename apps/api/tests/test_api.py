"""The integrators' API shell: tokens shown once, roles, error bodies, offline OpenAPI docs."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def logged_in(persona) -> Client:
    client = Client(HTTP_HOST=persona.host)
    response = client.post("/login/", {"username": persona.email, "password": persona.password})
    assert response.status_code == 302
    return client


def test_token_is_shown_once_then_works_then_revoked_gets_401(world):
    owner = logged_in(world.owner_a)
    created = owner.post("/api/v1/tokens/", {"name": "CRM sync"}, content_type="application/json")
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("eva_")

    listing = owner.get("/api/v1/tokens/").json()
    assert listing["count"] >= 1
    assert all("key" not in item for item in listing["results"])
    assert key not in str(listing)

    bearer = Client(HTTP_HOST=world.owner_a.host, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert bearer.get("/api/v1/me/").json()["email"] == world.owner_a.email

    token_id = created.json()["id"]
    revoked = owner.post(f"/api/v1/tokens/{token_id}/revoke/")
    assert revoked.json()["is_active"] is False
    denied = bearer.get("/api/v1/me/")
    assert denied.status_code == 401
    assert denied.json() == {
        "error": {
            "status": 401,
            "code": "authentication_failed",
            "message": "Invalid or revoked API token.",
        }
    }


def test_staff_cannot_manage_tokens(world):
    staff = logged_in(world.staff_a)
    response = staff.post("/api/v1/tokens/", {"name": "x"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Only the tenant's owners and admins may do this."


def test_other_tenants_token_ids_are_not_found(world):
    owner_a = logged_in(world.owner_a)
    token_id = owner_a.post(
        "/api/v1/tokens/", {"name": "a"}, content_type="application/json"
    ).json()["id"]
    owner_b = logged_in(world.owner_b)
    response = owner_b.post(f"/api/v1/tokens/{token_id}/revoke/")
    assert response.status_code == 404
    assert owner_a.get("/api/v1/tokens/").json()["results"][0]["is_active"] is True


def test_validation_errors_have_the_common_body(world):
    owner = logged_in(world.owner_a)
    response = owner.post("/api/v1/tokens/", {"name": ""}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400 and error["code"] == "invalid"
    assert error["message"] == "name: This field may not be blank."
    assert "name" in error["fields"]


def test_malformed_authorization_header(world):
    response = Client().get(
        "/api/v1/me/", HTTP_HOST="alpha.localhost", HTTP_AUTHORIZATION="Bearer a b"
    )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Malformed Authorization header."


def test_openapi_schema_and_offline_swagger_ui(world):
    client = Client(HTTP_HOST="alpha.localhost")
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/tokens/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()


def test_browsable_api_renders_for_a_logged_in_user(world):
    owner = logged_in(world.owner_a)
    response = owner.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"tokens" in response.content
