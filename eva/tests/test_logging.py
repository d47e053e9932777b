"""The development server's access log: /readyz's 503 while workers start is not an ERROR."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


def access_line(status: int, request_line: str) -> None:
    """What django.core.servers.basehttp logs for a request (its format, arguments, extras)."""
    log = logging.getLogger("django.server")
    log_at = log.error if status >= 500 else log.info
    log_at('"%s" %s %s', request_line, str(status), "671", extra={"status_code": status})


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def levels(self) -> dict[str, str]:
        return {record.getMessage(): record.levelname for record in self.records}


@pytest.fixture
def written() -> Iterator[tuple[Collect, logging.Logger]]:
    """What the configured ``django.server`` logger lets through, and the ``django`` logger
    whose level it follows."""
    server, django_logger = logging.getLogger("django.server"), logging.getLogger("django")
    collect, level = Collect(), django_logger.level
    server.addHandler(collect)
    yield collect, django_logger
    server.removeHandler(collect)
    django_logger.setLevel(level)


def test_readyz_503_is_logged_at_info_and_other_server_errors_stay_errors(written):
    collect, django_logger = written
    django_logger.setLevel(logging.INFO)
    access_line(503, "GET /readyz HTTP/1.1")
    access_line(503, "GET /readyz/?verbose=1 HTTP/1.1")
    access_line(503, "GET /inbox/ HTTP/1.1")
    access_line(500, "GET /readyz HTTP/1.1")
    assert collect.levels() == {
        '"GET /readyz HTTP/1.1" 503 671': "INFO",
        '"GET /readyz/?verbose=1 HTTP/1.1" 503 671': "INFO",
        '"GET /inbox/ HTTP/1.1" 503 671': "ERROR",
        '"GET /readyz HTTP/1.1" 500 671': "ERROR",
    }


def test_the_access_log_reaches_evas_handler_like_every_django_line():
    server = logging.getLogger("django.server")
    assert server.propagate and server.level == logging.NOTSET and not server.handlers
    assert [type(h).__name__ for h in logging.getLogger("django").handlers] == ["StreamHandler"]


def test_above_info_the_readyz_line_is_not_written_at_all(written):
    collect, django_logger = written
    django_logger.setLevel(logging.WARNING)
    access_line(503, "GET /readyz HTTP/1.1")
    access_line(503, "GET /leads/ HTTP/1.1")
    assert collect.levels() == {'"GET /leads/ HTTP/1.1" 503 671': "ERROR"}
