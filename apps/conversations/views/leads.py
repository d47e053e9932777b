"""The leads page: every real contact with what the agent and staff learnt about them, filtered
by stage or a search, a page at a time, and the same list as a CSV file."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from apps.conversations.forms import LeadFilterForm
from apps.conversations.models import Contact
from apps.conversations.selectors import lead_list
from apps.conversations.views.paging import page_of

PAGE_SIZE = 50
# A spreadsheet runs a cell that starts with one of these as a formula ("CSV injection"): a
# customer's "=HYPERLINK(…)" name must stay text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"\+\d{6,15}")  # an E.164 number is no formula: kept as it is


def _filtered(request: HttpRequest) -> tuple[LeadFilterForm, QuerySet[Contact]]:
    form = LeadFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    return form, lead_list(stage=filters.get("stage") or None, search=filters.get("q") or None)


@login_required
def lead_list_view(request: HttpRequest) -> HttpResponse:
    form, leads = _filtered(request)
    page, query = page_of(request, leads, PAGE_SIZE)
    context = {"form": form, "page": page, "query": query}
    return render(request, "conversations/leads.html", context)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _PHONE.fullmatch(text):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _rows(leads: Iterable[Contact], *, language: str, zone: tzinfo) -> Iterator[str]:
    # Streamed after the view returned: in the request's language and time zone, whatever the
    # server's thread has active by then.
    with translation.override(language), timezone.override(zone):
        yield from _written(leads)


def _written(leads: Iterable[Contact]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a BOM: Excel then reads the file as UTF-8 (accents in names)
    yield writer.writerow(
        [
            _("Name"),
            _("Phone"),
            _("Email"),
            _("Company"),
            _("Interest"),
            _("Budget"),
            _("Stage"),
            _("Language"),
            _("Opted out"),
            _("First contact"),
            _("Last contact"),
            _("Notes"),
        ]
    )
    for lead in leads:
        yield writer.writerow(
            [
                _cell(v)
                for v in (
                    lead.name,
                    lead.phone,
                    lead.email,
                    lead.company,
                    lead.interest,
                    lead.budget,
                    lead.get_stage_display(),
                    lead.language,
                    _("yes") if lead.opted_out else _("no"),
                    _when(lead.first_contact_at),
                    _when(lead.last_contact_at),
                    lead.notes,
                )
            ]
        )


def _when(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


@login_required
def lead_export_view(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered list as CSV (every page), streamed a thousand rows at a time."""
    _form, leads = _filtered(request)
    response = StreamingHttpResponse(
        _rows(
            leads.iterator(chunk_size=1000),
            language=translation.get_language(),
            zone=timezone.get_current_timezone(),
        ),
        content_type="text/csv; charset=utf-8",
    )
    name = f"leads-{timezone.localdate():%Y-%m-%d}.csv"
    response["Content-Disposition"] = content_disposition_header(True, name) or "attachment"
    return response
