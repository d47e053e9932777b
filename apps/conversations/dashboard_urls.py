# Dashboard pages of this app, included under /inbox/.
from django.urls import path

from apps.conversations import views

app_name = "conversations"
urlpatterns = [
    path("", views.inbox_view, name="inbox"),
    path("badge/", views.needs_human_badge_view, name="badge"),
    path("<int:conversation_id>/", views.conversation_view, name="detail"),
    path("<int:conversation_id>/thread/", views.conversation_thread_view, name="thread"),
    path("<int:conversation_id>/media/<int:message_id>/", views.message_media_view, name="media"),
    path("<int:conversation_id>/takeover/", views.conversation_takeover_view, name="takeover"),
    path("<int:conversation_id>/return/", views.conversation_return_view, name="return"),
    path("<int:conversation_id>/close/", views.conversation_close_view, name="close"),
    path("<int:conversation_id>/assign/", views.conversation_assign_view, name="assign"),
    path("<int:conversation_id>/reply/", views.conversation_reply_view, name="reply"),
    path("<int:conversation_id>/lead/", views.lead_edit_view, name="lead"),
    path("<int:conversation_id>/erase/", views.contact_erase_view, name="erase"),
]
