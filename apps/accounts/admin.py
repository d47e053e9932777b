from django.contrib import admin

from apps.accounts.models import User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ("email", "role", "is_active", "is_staff", "date_joined")
    search_fields = ("email", "full_name")
    exclude = ("password",)
