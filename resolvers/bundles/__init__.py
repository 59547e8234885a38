"""Bundles between lakes, driven over GraphQL: prepare and commit the import of a bundle on a mount."""
