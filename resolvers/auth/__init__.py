"""Authentication and API tokens."""
