"""Datums: one training example, its assets by role (image, mask, depth, ...), its split and metadata."""
