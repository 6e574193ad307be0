"""Sequence classification: sentence sentiment (``python -m experiments.sentiment``)."""
