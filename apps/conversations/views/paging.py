"""One page of a dashboard list, and the list's filters for the pager's links
(templates/dashboard/_pager.html)."""

from __future__ import annotations

from typing import TypeVar

from django.core.paginator import Page, Paginator
from django.db.models import Model, QuerySet
from django.http import HttpRequest

T = TypeVar("T", bound=Model)


def page_of(request: HttpRequest, items: QuerySet[T], size: int) -> tuple[Page[T], str]:
    """The page ``?page=`` asks for (past the end: the last; not a number: the first) and the
    request's query string without ``page``."""
    page: Page[T] = Paginator(items, size).get_page(request.GET.get("page"))
    filters = request.GET.copy()
    filters.pop("page", None)
    return page, filters.urlencode()
