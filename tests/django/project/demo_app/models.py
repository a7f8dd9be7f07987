"""A row the tests write in the same transaction as a task."""

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
