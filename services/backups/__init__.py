"""Backups of a lake and restores from them, below the documents (raw BSON, no model decoding).

A backup is a directory (layout.py): a manifest with counts and SHA-256s, one BSON file per
collection, and with payloads, each local mount's objects and a list of them. It is written under a
temporary name and renamed into place when complete, so a directory with a manifest is a whole
backup. writer.py makes one, reader.py restores one, layout.py says where everything is and checks a
backup against its manifest.
"""
