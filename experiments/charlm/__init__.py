"""Sequence generation: a character-level language model (``python -m experiments.charlm``)."""
