"""Datasets and their immutable versions: the builder, diffs and deterministic training splits."""
