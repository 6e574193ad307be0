"""Configs of the sentiment experiment; `default.Config` is the one the command line runs."""
