"""Tests for mcpgw (a package so that tests can `from tests.peers import ...`)."""
