"""Helpers shared by tests: small synthetic corpora and subprocess runners."""
