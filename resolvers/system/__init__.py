"""Health, mounts and connectivity: what a client asks before it asks for data."""
