"""Settings for every environment, read from the environment (SPEC 8).

The embedded default (no environment at all) is a SQLite file in the project folder, the
simulator call provider and DEBUG on. `dialnexa.settings_production` tightens this for a
deployment.
"""

from pathlib import Path

import dj_database_url

from dialnexa.env import env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", default=True)
SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-change-me-in-production-0123456789")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_filters",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    # Ours, bottom layer first: each imports only the ones above it.
    "workflows",
    "leads",
    "calls",
    # Before django_tasks_db: engine's `db_worker` extends that app's command (same name; the
    # first app listed wins) with the engine's heartbeat.
    "engine",
    "django_tasks",
    "django_tasks_db",
    "api",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dialnexa.urls"
WSGI_APPLICATION = "dialnexa.wsgi.application"

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
                "dashboard.context_processors.shell",
            ],
        },
    },
]

# SQLite: WAL so the web server reads while the worker writes; a busy timeout so a writer
# waits for the lock instead of failing; IMMEDIATE so a transaction takes the write lock when
# it begins — a read-then-write transaction can then never be overtaken between its read and
# its write (SQLite's answer to select_for_update).
SQLITE_OPTIONS = {
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
    ),
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

# Lets two test runs on one machine use separate test databases.
_TEST_DB_SUFFIX = env_str("DIALNEXA_TEST_DB_SUFFIX", "")
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
    # A file, not :memory:, so tests that use two threads (two connections) share one database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test-db{_TEST_DB_SUFFIX}.sqlite3")}
elif _TEST_DB_SUFFIX:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}{_TEST_DB_SUFFIX}"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "media/"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its WWW-Authenticate header makes an anonymous call a 401, not a 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DialNexa workflows API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a `status`: name each enum after its own status type.
    "ENUM_NAME_OVERRIDES": {
        "WorkflowStatusEnum": "workflows.statuses.WorkflowStatus",
        "ExecutionStatusEnum": "leads.models.ExecutionStatus",
        "LeadFileStatusEnum": "leads.models.LeadFileStatus",
        "CallStatusEnum": "calls.models.CallStatus",
    },
}

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}

# DialNexa
DIALNEXA_CALL_PROVIDER = env_choice("DIALNEXA_CALL_PROVIDER", "simulator", {"simulator", "http"})
DIALNEXA_SIMULATOR_DELAY = env_float("DIALNEXA_SIMULATOR_DELAY", 3.0)
DIALNEXA_DIALER_URL = env_str("DIALNEXA_DIALER_URL", "")
DIALNEXA_WEBHOOK_SECRET = env_str("DIALNEXA_WEBHOOK_SECRET", "dev-webhook-secret")
DIALNEXA_PUBLIC_URL = env_str("DIALNEXA_PUBLIC_URL", "http://127.0.0.1:8000")
DIALNEXA_DEMO_PASSWORD = env_str("DIALNEXA_DEMO_PASSWORD", "dialnexa-demo")
# Leads started per transaction when a workflow is activated: large enough that 1M leads take
# a few dozen statements, small enough that one transaction never holds locks for long.
DIALNEXA_START_CHUNK = env_int("DIALNEXA_START_CHUNK", 20_000)
DIALNEXA_DEFAULT_REGION = env_str("DIALNEXA_DEFAULT_REGION", "US")
DIALNEXA_MAX_UPLOAD_BYTES = env_int("DIALNEXA_MAX_UPLOAD_BYTES", 100 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DIALNEXA_FROM_NUMBER = env_str("DIALNEXA_FROM_NUMBER", "+14155550100")
# Engine: executions claimed per batch, how long a claim lasts before another worker may take
# it over, how long one tick task works before handing over, how often each worker checks
# that a tick is queued.
DIALNEXA_BATCH_SIZE = env_int("DIALNEXA_BATCH_SIZE", 5000)
DIALNEXA_LEASE_SECONDS = env_float("DIALNEXA_LEASE_SECONDS", 60.0)
DIALNEXA_TICK_SECONDS = env_float("DIALNEXA_TICK_SECONDS", 10.0)
DIALNEXA_HEARTBEAT_SECONDS = env_float("DIALNEXA_HEARTBEAT_SECONDS", 2.0)
# A Voice Call node whose workflow is at its concurrency cap looks again after this long.
DIALNEXA_CAPACITY_RETRY_SECONDS = env_float("DIALNEXA_CAPACITY_RETRY_SECONDS", 1.0)
# Application nodes and the http dialer: retries after the first attempt, and the first backoff
# (doubling each time).
DIALNEXA_HTTP_RETRIES = env_int("DIALNEXA_HTTP_RETRIES", 3)
DIALNEXA_HTTP_BACKOFF_SECONDS = env_float("DIALNEXA_HTTP_BACKOFF_SECONDS", 1.0)
DIALNEXA_HTTP_TIMEOUT_SECONDS = env_float("DIALNEXA_HTTP_TIMEOUT_SECONDS", 10.0)
# Simulator: relative weights of final statuses for leads without a sim_status field.
DIALNEXA_SIMULATOR_WEIGHTS = {
    "completed": 40,
    "did_not_pick": 20,
    "busy": 10,
    "failed": 8,
    "no_answer": 15,
    "cancelled": 4,
    "retry_expired": 3,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
