from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector lives in the public schema; tenant schemas reach it through the search path."""

    initial = True
    dependencies: list = []
    operations = [VectorExtension()]
