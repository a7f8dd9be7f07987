"""A task module that fails to import: a package it needs is not installed."""

import taskstore_tests_package_not_installed  # noqa: F401
from django.tasks import task


@task
def job():
    return None
