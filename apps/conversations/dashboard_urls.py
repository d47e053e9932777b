# Dashboard pages of this app, included under /conversations/.
app_name = "conversations"
urlpatterns: list = []
