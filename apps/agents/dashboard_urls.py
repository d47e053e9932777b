# Dashboard pages of this app, included under /agents/.
app_name = "agents"
urlpatterns: list = []
