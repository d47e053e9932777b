# Routes of this app under /api/v1/.
urlpatterns: list = []
