"""Celery task modules, one per queue duty. Tasks stay thin: ids in, one service call, retries."""
