"""Configs of the translation experiment; `default.Config` is what the CLI runs."""
