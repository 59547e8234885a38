"""The Python client library for Graphlake: it imports no server package, so it installs and runs alone."""
