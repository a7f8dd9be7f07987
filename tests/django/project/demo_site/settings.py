"""Settings of the demo project, read from the environment the tests set.

``DEMO_DJANGO_DATABASE``: Django's database as a URL (``sqlite:////path`` or
``postgresql://user@host:port/name``). ``DEMO_TASKS_URL``: the task database; empty means
the tasks live in Django's database (no ``database_url`` option at all).
"""

import json
import os
from urllib.parse import urlsplit

SECRET_KEY = "demo-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = ["taskstore.contrib.django", "demo_app"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database(url: str) -> dict:
    if url.startswith("sqlite:///"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": url.removeprefix("sqlite:///")}
    parsed = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/"),
        "USER": parsed.username or "",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
    }


DATABASES = {"default": _database(os.environ["DEMO_DJANGO_DATABASE"])}
if os.environ.get("DEMO_DJANGO_OTHER_DATABASE"):  # a second alias, for OPTIONS' database
    DATABASES["other"] = _database(os.environ["DEMO_DJANGO_OTHER_DATABASE"])
if os.environ.get("DEMO_DJANGO_OPTIONS"):  # a test's psycopg OPTIONS (a search_path)
    DATABASES["default"]["OPTIONS"] = json.loads(os.environ["DEMO_DJANGO_OPTIONS"])

_options = json.loads(os.environ.get("DEMO_TASKS_OPTIONS") or "{}")  # a test's bad options
if os.environ.get("DEMO_TASKS_URL"):
    _options["database_url"] = os.environ["DEMO_TASKS_URL"]
TASKS = {
    "default": {
        "BACKEND": "taskstore.contrib.django.TaskstoreBackend",
        "QUEUES": json.loads(os.environ.get("DEMO_TASKS_QUEUES") or '["default", "emails"]'),
        "OPTIONS": _options,
    },
    "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
}
