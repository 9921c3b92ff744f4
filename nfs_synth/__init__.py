"""nfs_synth: training data and networks for neuromorphic all-in-focus imaging."""

__version__ = "0.1.0"
