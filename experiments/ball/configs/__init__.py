"""Configs of the ball experiment; `default.Config` is what ``python -m experiments.ball`` runs."""
