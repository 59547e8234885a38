"""Versioned changes to the stored document shapes.

SCHEMA_VERSION is the shape version this code reads and writes. Each later change to a stored
shape adds a step here that moves data forward and back, freezing its own document snapshot,
and raises this number. Version 1 is the first shape, so no step exists yet.
"""

SCHEMA_VERSION = 1
