"""Payloads: upload sessions through signed URLs, completion with verification, external data."""
