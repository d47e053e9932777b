"""Settings that would lose tasks (early acknowledgement): workers must refuse to start."""

from eva.settings import *  # noqa: F403 - every project setting, the unsafe ones changed below

CELERY_TASK_ACKS_LATE = False
