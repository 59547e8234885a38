"""Assets: stored JSON values, texts, files and external objects; aliases, lineage and retention pins."""
