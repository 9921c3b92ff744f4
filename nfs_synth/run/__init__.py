"""Stage 5: running corpora. One scene end to end (pipeline), the driver (orchestrate), worker pools,
the manifest ledger, sensor studies."""
