"""Beanie documents, one module per collection; documents/registry.py lists them for `init_beanie`.

Each document declares its indexes in `Settings.indexes`, each with an explicit name and the servers
it is for (documents/indexes.py): `graphlake.database.ensure_indexes` creates the missing ones by that
name on the server it runs on.

This package imports nothing itself, so a light module of it (roles.py, clock.py, indexes.py) can be
imported without Beanie and every model: the `graphlake` command's client-side verbs rely on that.
"""
