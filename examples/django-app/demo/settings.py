"""Settings of django-demo: production-like (DEBUG off, ALLOWED_HOSTS enforced), no database.

``ALLOWED_HOSTS`` comes from ``DJANGO_ALLOWED_HOSTS`` (comma-separated), default
``django-demo.example``. Django answers ``400 Bad Request`` to any request whose Host header is
not in it, and that includes bgci's health probes, which reach the app at ``127.0.0.1:<port>``:
set ``health.host`` in bgci.toml to one of the allowed names (this example's bgci.toml does).
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A real deployment sets DJANGO_SECRET_KEY (platform.env, or the container's environment);
# nothing in this demo signs anything worth protecting.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-demo-insecure-key-for-the-example-only")
DEBUG = False
ALLOWED_HOSTS = [host.strip() for host in
                 os.environ.get("DJANGO_ALLOWED_HOSTS", "django-demo.example").split(",")
                 if host.strip()]

INSTALLED_APPS: list[str] = []
# CommonMiddleware reads the Host header of every request: that is where ALLOWED_HOSTS is enforced.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# With DEBUG off Django logs a rejected Host only to mail_admins: print it too, so that a failed
# health check's report (which carries the app's last output lines) says why.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.security": {"handlers": ["console"], "level": "WARNING"}},
}
