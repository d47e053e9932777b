# Dashboard pages of this app, included under /agents/.
from django.urls import path

from apps.agents import views

app_name = "agents"
urlpatterns = [
    path("", views.agent_list_view, name="list"),
    path("overview/", views.overview_view, name="overview"),
    path("new/", views.agent_create_view, name="create"),
    path("<int:agent_id>/edit/", views.agent_edit_view, name="edit"),
    path("<int:agent_id>/delete/", views.agent_delete_view, name="delete"),
    path("<int:agent_id>/simulator/", views.simulator_view, name="simulator"),
    path("<int:agent_id>/simulator/thread/", views.simulator_thread_view, name="simulator-thread"),
    path("<int:agent_id>/simulator/send/", views.simulator_send_view, name="simulator-send"),
    path("<int:agent_id>/simulator/reset/", views.simulator_reset_view, name="simulator-reset"),
]
