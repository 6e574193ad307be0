"""Experiments: one self-contained problem per folder, built on the jaxrnn library."""
