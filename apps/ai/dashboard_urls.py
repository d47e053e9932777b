# Dashboard pages of this app, included under /ai/.
app_name = "ai"
urlpatterns: list = []
