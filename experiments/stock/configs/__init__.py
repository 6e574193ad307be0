"""Configs of the stock experiment; `default.Config` is the one the command line runs."""
