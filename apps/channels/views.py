"""Dashboard pages of WhatsApp numbers: list, connect (QR refreshed by HTMX polling), status,
stop, log out. Everyone in the tenant sees the numbers; owners and admins change them."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from apps.accounts.models import User
from apps.channels import services
from apps.channels.models import WhatsAppSession
from apps.channels.selectors import whatsapp_session_get_for_user, whatsapp_session_list


class SessionForm(forms.Form):
    label = forms.CharField(
        label=gettext_lazy("Name of the number"),
        max_length=80,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("e.g. Sales")}),
    )


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _require_manager(request: HttpRequest) -> None:
    if not _user(request).can_manage:
        raise PermissionDenied(_("Only owners and admins connect or disconnect numbers."))


def _session(request: HttpRequest, pk: int) -> WhatsAppSession:
    session = whatsapp_session_get_for_user(user=_user(request), pk=pk)
    if session is None:
        raise Http404
    return session


def qr_svg(payload: str) -> str:
    """The pairing QR as inline SVG, drawn on the server (no JavaScript, no CDN)."""
    import segno

    return str(segno.make_qr(payload, error="l").svg_inline(scale=5, border=2))


def _status_context(session: WhatsAppSession) -> dict[str, object]:
    return {
        "session": session,
        "qr_svg": mark_safe(qr_svg(session.qr)) if session.shows_qr else None,  # noqa: S308 - segno's SVG, no user markup
    }


@login_required
def session_list(request: HttpRequest) -> HttpResponse:
    form = SessionForm(request.POST or None)
    if request.method == "POST":
        _require_manager(request)
        if form.is_valid():
            session = services.whatsapp_session_create(label=form.cleaned_data["label"])
            services.whatsapp_session_start(session=session)
            return redirect("channels:detail", pk=session.pk)
    return render(
        request, "channels/list.html", {"form": form, "sessions": whatsapp_session_list()}
    )


@login_required
def session_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "channels/detail.html", _status_context(_session(request, pk)))


@login_required
def session_status(request: HttpRequest, pk: int) -> HttpResponse:
    """The status panel, polled by HTMX every few seconds: the QR is replaced about every 20 s
    and disappears once the phone is paired."""
    return render(request, "channels/_status.html", _status_context(_session(request, pk)))


def _action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    _require_manager(request)
    session = _session(request, pk)
    getattr(services, f"whatsapp_session_{action}")(session=session)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "channels/_status.html", _status_context(session))
    messages.info(
        request,
        {
            "start": _("Starting the number: scan the QR code when it appears."),
            "stop": _("Stopping the number. The pairing is kept."),
            "logout": _("Logging the number out of WhatsApp."),
        }[action],
    )
    return redirect("channels:detail", pk=session.pk)


@login_required
@require_POST
def session_start(request: HttpRequest, pk: int) -> HttpResponse:
    return _action(request, pk, "start")


@login_required
@require_POST
def session_stop(request: HttpRequest, pk: int) -> HttpResponse:
    return _action(request, pk, "stop")


@login_required
@require_POST
def session_logout(request: HttpRequest, pk: int) -> HttpResponse:
    return _action(request, pk, "logout")
