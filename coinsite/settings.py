"""The one settings module, read from the environment (django-environ).

No variables set: the embedded default (SQLite file in var/, Celery eager, MLflow on a local SQLite file, media in
var/media). With DATABASE_URL, CELERY_BROKER_URL and MLFLOW_TRACKING_URI: PostgreSQL, Redis + real workers, an MLflow
tracking server. Same code either way.
"""

import os
import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from coinsite.logformat import formatter_config
from training.ml.photo_limits import PhotoLimits

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("COINSITE_VAR_DIR", BASE_DIR / "var"))  # created at start-up: coinsite.apps

env = environ.Env()
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# MLflow otherwise gives its loggers a handler and format of their own when imported; its lines then go through
# LOGGING below like every other library's (same format, JSON with LOG_FORMAT=json, WARNING and up).
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")

# pytest (>= 8.2) sets PYTEST_VERSION for its whole session, subprocesses included: the suite runs the production
# defaults (DEBUG off, manifest static files) but needs no secret and speaks plain http to its test servers.
TESTING = "PYTEST_VERSION" in os.environ
# Off unless asked for: `make run` sets DJANGO_DEBUG=1, so a deployment that forgets it never shows debug pages.
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Production has no default secret: with DEBUG off (outside tests) the key must come from the environment, and
# start-up fails with a message naming DJANGO_SECRET_KEY.
if DEBUG or TESTING:
    SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key")
else:
    SECRET_KEY = env("DJANGO_SECRET_KEY")
# Django's test client calls itself "testserver": accepted in tests and with DEBUG only, never by production's default.
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", *(["testserver"] if DEBUG or TESTING else [])]
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "coinsite.apps.CoinsiteConfig",
    "registry",
    "predictions",
    "training",
]

MIDDLEWARE = [
    # Outermost, so the latency it measures for /metrics includes every other middleware (coinsite/metrics.py).
    "coinsite.metrics.RequestLatencyMiddleware",
    # Next, so every response carries the policy (redirects and static files too) and views see request.csp_nonce.
    "coinsite.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "coinsite.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "predictions.context_processors.active_model",
                "training.context_processors.first_model",
                "coinsite.csp.csp_nonce",
            ],
        },
    },
]
WSGI_APPLICATION = "coinsite.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web requests and in-process tasks write concurrently: wait for the lock instead of failing. WAL lets pages read
    # while a prediction is written, and with synchronous=NORMAL a commit costs no fsync of its own; a committed row
    # still survives the death of any process (only an OS crash or power cut can drop the last commits).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
# Keep each thread's connection for a minute instead of opening one per request (a new SQLite connection runs its
# PRAGMAs, a new PostgreSQL one a TLS/auth handshake); health checks drop a connection the server closed.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Django's password backend behind the sign-in lockout (coinsite.lockout): the 6th try after 5 wrong passwords for
# one account is refused, even with the right password, for 15 minutes.
AUTHENTICATION_BACKENDS = ["coinsite.lockout.LockoutModelBackend"]
COINSITE_LOGIN_FAILURE_LIMIT = env.int("COINSITE_LOGIN_FAILURE_LIMIT", default=5)
COINSITE_LOGIN_LOCKOUT_SECONDS = env.int("COINSITE_LOGIN_LOCKOUT_SECONDS", default=15 * 60)
# Password-reset mail: EMAIL_URL (e.g. smtp+tls://user:pass@host:587) sends it. Without it, `make run` (DEBUG) prints
# it to the console; production drops it (dummymail): a reset link printed to a production log lets anyone who
# reads the logs take over the account.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG or TESTING else "dummymail://")
vars().update(EMAIL_CONFIG)  # EMAIL_BACKEND, EMAIL_HOST, ... (django-environ's documented way)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="coinsite <noreply@localhost>")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "coin-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"  # created at start-up (coinsite.apps): whitenoise warns when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
# Photos: the durable local folder by default; an S3-compatible object store when AWS_STORAGE_BUCKET_NAME is set
# (with AWS_S3_ENDPOINT_URL for a non-AWS server, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Every reader goes
# through the storage API, so web, inference and training hosts then share no disk.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
PHOTO_STORAGE = {"BACKEND": "coinsite.storage.DurableFileSystemStorage"}
if AWS_STORAGE_BUCKET_NAME:
    PHOTO_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default="us-east-1"),
            "location": env("AWS_LOCATION", default="media"),
            "default_acl": None,
            "querystring_auth": True,
            # Names are random (predictions.models.coin_image_path): no existence check (a HEAD per save) needed.
            "file_overwrite": True,
        },
    }
STORAGES = {
    "default": PHOTO_STORAGE,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Uploads: two photos up to MAX_UPLOAD_BYTES each, plus the form around them.
COINSITE_MAX_UPLOAD_BYTES = env.int("COINSITE_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
COINSITE_MAX_IMAGE_PIXELS = env.int("COINSITE_MAX_IMAGE_PIXELS", default=50_000_000)
# Every photo's decode is priced from its header and refused over these (training.ml.decoding has the measurements).
COINSITE_DECODE_BUDGET_SECONDS = env.float("COINSITE_DECODE_BUDGET_SECONDS", default=0.8)
COINSITE_DECODE_MEMORY_BYTES = env.int("COINSITE_DECODE_MEMORY_BYTES", default=160 * 1024 * 1024)
# The one object every photo path passes (upload checks, serving, prediction task, re-score, training, comparison):
# a photo accepted at upload is never refused later by a tighter library default.
COINSITE_PHOTO_LIMITS = PhotoLimits(
    max_bytes=COINSITE_MAX_UPLOAD_BYTES,
    max_pixels=COINSITE_MAX_IMAGE_PIXELS,
    budget_seconds=COINSITE_DECODE_BUDGET_SECONDS,
    max_decode_bytes=COINSITE_DECODE_MEMORY_BYTES,
)
# Photo files older than this with no coin row (a process killed mid-request) are removed by the orphan sweep.
COINSITE_ORPHAN_GRACE_SECONDS = env.int("COINSITE_ORPHAN_GRACE_SECONDS", default=3600)
# The sweeps without beat: an in-process timer, one process per tick (predictions/housekeeping.py); `make run` sets
# 300 and gunicorn.conf.py 60 for its workers; 0 = off (tools, tests, Celery workers).
COINSITE_HOUSEKEEPING_SECONDS = env.int("COINSITE_HOUSEKEEPING_SECONDS", default=0)
# A coin still pending this long (its task lost, or its worker killed before acknowledging) is asked for again.
COINSITE_PENDING_REQUEUE_SECONDS = env.int("COINSITE_PENDING_REQUEUE_SECONDS", default=120)
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * COINSITE_MAX_UPLOAD_BYTES  # base64 JSON of two photos is 4/3 of their size
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * COINSITE_MAX_UPLOAD_BYTES
COINSITE_PREDICT_MAX_INPUTS = env.int("COINSITE_PREDICT_MAX_INPUTS", default=16)
# Bytes of photos one collector may keep (predictions/quota.py); 0: no quota.
COINSITE_STORAGE_QUOTA_BYTES = env.int("COINSITE_STORAGE_QUOTA_BYTES", default=1024 * 1024 * 1024)

# Celery: eager in-process without a broker (embedded default), Redis workers with one.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# MLflow: local SQLite file + artifact folder by default, a tracking server with MLFLOW_TRACKING_URI.
MLFLOW_TRACKING_URI = env("MLFLOW_TRACKING_URI", default=f"sqlite:///{VAR_DIR / 'mlflow.db'}")
MLFLOW_ARTIFACT_ROOT = env("MLFLOW_ARTIFACT_ROOT", default=str(VAR_DIR / "mlartifacts"))
MLFLOW_EXPERIMENT_NAME = env("MLFLOW_EXPERIMENT_NAME", default="coin-year")
MLFLOW_MODEL_NAME = env("MLFLOW_MODEL_NAME", default="coin-year")
TRAINING_CONFIG_PATH = env("TRAINING_CONFIG_PATH", default=str(BASE_DIR / "configs" / "default.yaml"))

# The learning loop.
AUTO_PROMOTE = env.bool("AUTO_PROMOTE", default=False)
PROMOTION_MARGIN_YEARS = env.float("PROMOTION_MARGIN_YEARS", default=0.5)
EVALUATION_SHARE = env.float("EVALUATION_SHARE", default=0.15)
RETRAIN_MIN_NEW_LABELS = env.int("RETRAIN_MIN_NEW_LABELS", default=20)
HARD_EXAMPLE_YEARS = env.int("HARD_EXAMPLE_YEARS", default=20)
HARD_EXAMPLE_WEIGHT = env.float("HARD_EXAMPLE_WEIGHT", default=2.0)
TRAINING_LEASE_SECONDS = env.int("TRAINING_LEASE_SECONDS", default=900)  # a RUNNING run silent this long is dead
# With a broker, a run's K folds are K tasks on the `training` queue (training.services.folds); a fold whose worker
# died is trained again up to this many times in all.
TRAINING_FOLD_PARALLEL = env.bool("TRAINING_FOLD_PARALLEL", default=True)
TRAINING_FOLD_ATTEMPTS = env.int("TRAINING_FOLD_ATTEMPTS", default=3)
INFERENCE_ALIAS_POLL_SECONDS = env.float("INFERENCE_ALIAS_POLL_SECONDS", default=5.0)
INFERENCE_TORCH_THREADS = env.int("INFERENCE_TORCH_THREADS", default=1)
# Serving processes load the Production model at start-up (registry.apps); `make run` and the inference workers set it,
# gunicorn workers do it in post_worker_init. Off for tools and tests, which need no model.
COINSITE_WARM_UP_MODEL = env.bool("COINSITE_WARM_UP_MODEL", default=False)

# A cache shared by every process (CACHE_URL, e.g. redis://127.0.0.1:6379/1: not the Celery broker's db 0), or the
# embedded default's one process's memory. The API's throttles count calls in it (predictions/throttles.py).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://coinsite")}

# API abuse limits: calls per user (per address for the token endpoint), "<count>/<second|minute|hour|day>".
_THROTTLE_RATE_FORMAT = r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)"
COINSITE_THROTTLE_RATES = {
    "predict": env("COINSITE_THROTTLE_PREDICT", default="30/min"),
    "upload": env("COINSITE_THROTTLE_UPLOAD", default="30/min"),
    "token": env("COINSITE_THROTTLE_TOKEN", default="10/min"),
    # Accounts (coinsite/lockout.py, predictions/views.py): refused before any password is hashed or mail is sent.
    "signin": env("COINSITE_THROTTLE_SIGNIN", default="20/min"),  # per address, site and admin sign-in pages
    "signin_account": env("COINSITE_THROTTLE_SIGNIN_ACCOUNT", default="10/min"),  # per username, from any address
    "signup": env("COINSITE_THROTTLE_SIGNUP", default="10/hour"),  # per address
    "password_reset": env("COINSITE_THROTTLE_PASSWORD_RESET", default="5/hour"),  # per address
    "password_reset_email": env("COINSITE_THROTTLE_PASSWORD_RESET_EMAIL", default="3/hour"),  # per mailbox
}
for _scope, _rate in COINSITE_THROTTLE_RATES.items():
    if not re.fullmatch(_THROTTLE_RATE_FORMAT, _rate):
        raise ImproperlyConfigured(f"COINSITE_THROTTLE_{_scope.upper()}={_rate!r}: write a rate as e.g. 30/min")
# API tokens expire this many hours after they are issued (POST /api/token gives a new one); 0: never.
COINSITE_TOKEN_TTL_HOURS = env.float("COINSITE_TOKEN_TTL_HOURS", default=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "predictions.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "predictions.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": COINSITE_THROTTLE_RATES,
    # A client's address for the per-address limits: REMOTE_ADDR, or with N trusted proxies in front (a TLS proxy: 1)
    # the address the nearest one appended to X-Forwarded-For. DRF's default (None) trusts the whole header, which a
    # password guesser can set to anything, a new address per try.
    "NUM_PROXIES": env.int("COINSITE_NUM_PROXIES", default=0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "coinsite API",
    "DESCRIPTION": "Predict a coin's minting year from a front and a back photo.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients' requests).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# HTTPS only: redirect http, Secure cookies, HSTS. On in production; off for `make run`, the test suite and a plain-http
# deployment on localhost (`make run-distributed` sets DJANGO_HTTPS=0).
HTTPS = env.bool("DJANGO_HTTPS", default=not DEBUG and not TESTING)
if HTTPS:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    # Probes answer over plain http too: a load balancer or Prometheus reaching the host directly sends no
    # X-Forwarded-Proto. /readyz and /metrics keep their own access rule (METRICS_ALLOWED_NETWORKS, METRICS_TOKEN).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# /metrics (coinsite/metrics.py) answers scrapers from these networks (REMOTE_ADDR, or with COINSITE_NUM_PROXIES the
# address the nearest proxy appended to X-Forwarded-For), or anyone sending `Authorization: Bearer <METRICS_TOKEN>`.
# METRICS_ALLOWED_NETWORKS= (empty) leaves the token as the only way in.
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"],
)
METRICS_TOKEN = env("METRICS_TOKEN", default="")

# Every line carries time, level and logger (and the process: several gunicorn and Celery workers write to one
# stream); LOG_FORMAT=json writes one JSON object per line (coinsite/logformat.py). Celery workers use this too
# (coinsite/celery.py), gunicorn's own loggers the same formats (gunicorn.conf.py).
LOG_FORMAT = env("LOG_FORMAT", default="text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": formatter_config(LOG_FORMAT)},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"alembic": {"level": "WARNING"}, "mlflow": {"level": "WARNING"}},
}

# Errors to Sentry when SENTRY_DSN is set (web and Celery workers alike); no personal data, no performance traces
# unless SENTRY_TRACES_SAMPLE_RATE asks for a share of them.
SENTRY_DSN = env("SENTRY_DSN", default="")
if SENTRY_DSN:
    from coinsite.sentry import sentry_init

    sentry_init(
        dsn=SENTRY_DSN,
        environment=env("SENTRY_ENVIRONMENT", default="production"),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
