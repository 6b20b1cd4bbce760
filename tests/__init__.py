"""Tests of hardened-code-server (a package so shared helpers import as `tests.<module>`)."""
