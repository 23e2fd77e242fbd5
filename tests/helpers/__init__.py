"""Code shared by several test modules; ``tests/conftest.py`` keeps only fixtures and hooks."""
