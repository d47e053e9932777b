"""The dashboard menu marks the section the page shown belongs to."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_current(context: dict[str, Any], url: str, *also: str) -> SafeString:
    """`` aria-current="page"`` when the page shown is ``url`` or under it (the overview,
    ``/``, only itself), or under one of ``also``; else nothing."""
    request = context.get("request")
    path = request.path if request is not None else ""
    current = path == url if url == "/" else any(path.startswith(p) for p in (url, *also))
    return mark_safe(' aria-current="page"' if current else "")  # noqa: S308 - a constant
