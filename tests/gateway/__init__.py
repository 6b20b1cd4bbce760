"""Tests of the gateway layer: settings, renderers checked by real tools, the stack under mocks."""
