# Dashboard pages of this app, included under /knowledge/.
app_name = "knowledge"
urlpatterns: list = []
