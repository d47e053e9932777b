"""Error answers: JSON under /api/ (the API's error body), a dashboard page elsewhere, on tenant
hosts and the public host, in the reader's language."""

from __future__ import annotations

import json

import pytest
from django.test import Client, RequestFactory
from django.utils import translation

from eva import errors

pytestmark = pytest.mark.django_db


def test_an_unknown_api_path_answers_the_apis_json_error(world):
    client = Client(HTTP_HOST=world.owner_a.host)
    response = client.get("/api/v1/knowledge/documents/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"status": 404, "code": "not_found", "message": "No such API endpoint."}
    }
    spanish = client.get("/api/v1/nope/", HTTP_ACCEPT_LANGUAGE="es").json()
    assert spanish["error"]["message"] == "No existe ese punto de la API."


@pytest.mark.parametrize("host", ["alpha.localhost", "localhost"])
def test_an_unknown_page_is_a_page_in_the_dashboards_look(world, host):
    client = Client(HTTP_HOST=host)
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="es")
    assert response.status_code == 404
    page = response.content.decode()
    assert "<h1>Página no encontrada</h1>" in page and 'href="/"' in page
    assert "eva/eva.css" in page  # the dashboard's style sheet


def test_a_crash_answers_json_under_api_and_a_standalone_page_elsewhere():
    factory = RequestFactory()
    with translation.override("en"):
        api = errors.server_error(factory.get("/api/v1/conversations/"))
        page = errors.server_error(factory.get("/inbox/"))
    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    assert json.loads(api.content) == {
        "error": {"status": 500, "code": "server_error", "message": "Internal server error."}
    }
    assert page.status_code == 500
    assert '<html lang="en">' in page.content.decode()
    assert "<h1>Something went wrong</h1>" in page.content.decode()
    with translation.override("es"):
        page = errors.server_error(factory.get("/inbox/"))
    assert "<h1>Algo salió mal</h1>" in page.content.decode()


def test_a_refused_page_says_who_may_open_it(world):
    staff = Client(HTTP_HOST=world.staff_a.host)
    staff.post("/login/", {"username": world.staff_a.email, "password": world.staff_a.password})
    refused = staff.get("/usage/", HTTP_ACCEPT_LANGUAGE="es")
    assert refused.status_code == 403
    page = refused.content.decode()
    assert "<h1>No permitido</h1>" in page
    assert "Solo propietarios y administradores ven el consumo" in page
    assert staff.get("/agents/new/").status_code == 403
