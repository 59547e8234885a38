"""The `summary` query: what the lake holds, counted (services/summary.py does the counting)."""
