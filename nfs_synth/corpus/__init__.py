"""Corpus I/O: scene files, manifest, readers and exports."""
