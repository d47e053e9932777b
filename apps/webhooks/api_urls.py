# Routes of this app under /api/v1/.
from django.urls import path

from apps.webhooks import api

urlpatterns = [
    path("webhooks/", api.WebhookEndpointListCreate.as_view(), name="webhook-list"),
    path("webhooks/<int:endpoint_id>/", api.WebhookEndpointDetail.as_view(), name="webhook-detail"),
    path(
        "webhooks/<int:endpoint_id>/roll-secret/",
        api.WebhookSecretRoll.as_view(),
        name="webhook-roll",
    ),
    path("webhooks/<int:endpoint_id>/test/", api.WebhookTest.as_view(), name="webhook-test"),
    path(
        "webhooks/<int:endpoint_id>/deliveries/",
        api.WebhookDeliveryList.as_view(),
        name="webhook-deliveries",
    ),
    path(
        "webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver/",
        api.WebhookRedeliver.as_view(),
        name="webhook-redeliver",
    ),
]
