"""Configs of the character-level language model; `default.Config` is what the CLI runs."""
