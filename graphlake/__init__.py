"""Graphlake: a GraphQL data lake server for labs and ML teams."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("graphlake")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

# The checkout (or image) root: GraphiQL's npm assets and graphql/ live beside the packages.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
