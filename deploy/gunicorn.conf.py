"""Gunicorn settings for the `web` service (read with `gunicorn --config deploy/gunicorn.conf.py`).

Every value can be tuned from the environment without rebuilding the image.
"""

import multiprocessing
import os

# Inside the container the port is reachable only on the compose network (Traefik in front);
# binding all interfaces is what makes it reachable there at all.
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Default (2 x cores) + 1 is gunicorn's rule of thumb, capped so a big host does not starve workers.
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2 + 1, 9)))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
# Must stay below Traefik's and the client's patience; LLM calls happen in Celery, not here.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak never takes the web tier down.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "1000"))
max_requests_jitter = 100
# /dev/shm is RAM-backed; the default tmp dir can block heartbeats on a slow overlay disk.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - RAM-backed, private to the container
# Traefik is the only client; it sets X-Forwarded-Proto, which Django trusts when EVA_HTTPS=true.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "*")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
