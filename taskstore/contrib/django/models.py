"""No models: the module exists so that Django sends this app ``post_migrate``, on which
the task tables are migrated (see `taskstore.contrib.django.apps`)."""
