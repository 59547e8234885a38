"""Collections: named groups of assets, each item with a path and a split; they pin their assets."""
