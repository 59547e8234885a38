"""Annotations: schemas (labels, kinds, rules), sets (purpose and source) and validated records."""
