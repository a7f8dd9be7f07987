"""Integrations of taskstore with frameworks; each lives in its own subpackage and needs
that framework installed (``pip install 'taskstore[django]'``)."""
