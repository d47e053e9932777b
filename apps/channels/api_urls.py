# Routes of this app under /api/v1/.
from django.urls import path

from apps.channels import api

urlpatterns = [
    path(
        "whatsapp/sessions/",
        api.WhatsAppSessionListCreate.as_view(),
        name="whatsapp-session-list",
    ),
    path(
        "whatsapp/sessions/<str:session_id>/",
        api.WhatsAppSessionDetail.as_view(),
        name="whatsapp-session-detail",
    ),
    *[
        path(
            f"whatsapp/sessions/<str:session_id>/{action}/",
            api.WhatsAppSessionAction.as_view(action_name=action),
            name=f"whatsapp-session-{action}",
        )
        for action in ("start", "stop", "logout")
    ],
]
