"""Sequence to sequence: Turkish to English translation (``python -m experiments.translate``)."""
