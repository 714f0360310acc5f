"""Tests of linkmeter.engine.state: the shared state in Redis."""
