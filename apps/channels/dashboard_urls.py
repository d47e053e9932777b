# Dashboard pages of this app, included under /channels/.
app_name = "channels"
urlpatterns: list = []
