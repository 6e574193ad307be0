"""Sequence numeric prediction: a thrown ball's next position (``python -m experiments.ball``)."""
