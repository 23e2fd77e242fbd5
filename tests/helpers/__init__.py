"""Helpers shared by several test modules (fixtures and hooks stay in tests/conftest.py)."""
