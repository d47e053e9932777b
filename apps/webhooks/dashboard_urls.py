# Dashboard pages of this app, included under /settings/webhooks/.
from django.urls import path

from apps.webhooks import views

app_name = "webhooks"
urlpatterns = [
    path("", views.endpoint_list_view, name="list"),
    path("<int:endpoint_id>/", views.endpoint_detail_view, name="detail"),
    path("<int:endpoint_id>/deliveries/", views.endpoint_deliveries_view, name="deliveries"),
    path("<int:endpoint_id>/test/", views.endpoint_test_view, name="test"),
    path("<int:endpoint_id>/roll-secret/", views.endpoint_roll_view, name="roll"),
    path("<int:endpoint_id>/delete/", views.endpoint_delete_view, name="delete"),
    path(
        "<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        views.delivery_redeliver_view,
        name="redeliver",
    ),
]
