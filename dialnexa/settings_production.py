"""Production settings: everything from the environment, secrets required, HTTPS assumed.

`DJANGO_SETTINGS_MODULE=dialnexa.settings_production python manage.py check --deploy`
reports nothing.
"""

import os

from django.core.exceptions import ImproperlyConfigured

from dialnexa.env import env_bool, env_int
from dialnexa.settings import *  # noqa: F403
from dialnexa.settings import STORAGES

for _required in ("SECRET_KEY", "DIALNEXA_WEBHOOK_SECRET"):
    if not os.environ.get(_required):
        raise ImproperlyConfigured(f"{_required} must be set in production")

SECRET_KEY = os.environ["SECRET_KEY"]
DIALNEXA_WEBHOOK_SECRET = os.environ["DIALNEXA_WEBHOOK_SECRET"]
DEBUG = env_bool("DEBUG", default=False)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
