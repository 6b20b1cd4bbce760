"""Shared pytest configuration: the real-root fixtures (see tests/realroot/fixtures.py)."""

pytest_plugins = ["tests.realroot.fixtures"]
