# Routes of this app under /api/v1/.
from django.urls import path

from apps.agents import api

urlpatterns = [
    path("agents/", api.AgentListCreate.as_view(), name="agent-list"),
    path("agents/<int:agent_id>/", api.AgentDetail.as_view(), name="agent-detail"),
]
