"""Sequence numeric prediction: tomorrow's close from daily prices.

Run ``python -m experiments.stock``.
"""
