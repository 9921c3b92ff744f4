"""NeuroRefocusNet and NeuroMergeNet (paper Sections 3.4-3.5, supplementary Tables 6 and 7).

Both are small U-Nets built from the same parts: a 3x3 stem, dense blocks that double the channel count
(4 DenseNet-B layers with growth = in/4 and a 1x1 bottleneck of 4*growth), 2x2 stride-2 convolutions
down, 2x2 transposed convolutions up, 1x1 fusion convolutions on the skip concatenations and two
residual blocks before the head. Every module has a normalisation layer and LeakyReLU(0.1), except the
prediction heads, which are plain convolutions because their outputs (a log residual, a weight logit)
must take any sign. `width` scales every channel count (1.0 = the paper; 1/16 for unit tests).

`norm` picks the normalisation layer (`NORMS`): "group" (the default; GroupNorm, statistics of each image
alone) behaves the same in training and inference; "batch" is the paper's. Trained at the small batches
these nets use, batch norm's running statistics blew up the spikes net's residual on bright scenes at
inference, and group norm scored higher for both modalities (docs/networks.md, "Normalisation").

Images are sRGB-encoded float in [0, 1], (B, 3, H, W); H and W must be multiples of 4 (`pad_to_multiple`
handles other sizes at inference).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nfs_synth.aif.representations import NFS_BINS, luma_chroma_merge
from nfs_synth.errors import UsageError

LOG_EPS = 1e-2  # keeps log() finite on black pixels; small against the 1/255 quantisation step
MODALITIES = ("events", "spikes")
NORMS = ("batch", "group")
GROUPS = 8  # GroupNorm groups (fewer where a layer has fewer channels: the dense layers' growth)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(channels, GROUPS), channels)
    raise UsageError(f"norm must be one of {NORMS}, got {norm!r}")


def conv_bn(cin: int, cout: int, k: int, norm: str, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, padding=(k - 1) // 2 if stride == 1 else 0),
                         norm_layer(norm, cout), _act())


def deconv_bn(cin: int, cout: int, norm: str) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, 2), norm_layer(norm, cout), _act())


class DenseBlock(nn.Module):
    """Four densely connected layers (1x1 bottleneck then 3x3); output = 2 * input channels."""

    def __init__(self, cin: int, norm: str, layers: int = 4):
        super().__init__()
        if cin % layers:
            raise UsageError(f"dense block input channels {cin} not divisible by {layers} layers")
        growth = cin // layers
        self.layers = nn.ModuleList(
            nn.Sequential(conv_bn(cin + i * growth, cin, 1, norm), conv_bn(cin, growth, 3, norm)) for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class ResBlock(nn.Module):
    """Two 3x3 conv-norm layers with an identity (or 1x1 projection) shortcut.

    With `head=True` the block ends linearly (no BN, no activation): Table 7 makes a residual block the
    layer that outputs NeuroMergeNet's initial weights.
    """

    def __init__(self, cin: int, cout: int, norm: str, head: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1), norm_layer(norm, cin), _act(),
                                  nn.Conv2d(cin, cout, 3, padding=1))
        self.norm = nn.Identity() if head else norm_layer(norm, cout)
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        self.out = nn.Identity() if head else _act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.body(x)) + self.skip(x))


class Encoder(nn.Module):
    """Conv1-DenseConv3 of Tables 6/7: returns features at full, 1/2 and 1/4 resolution (2c, 4c, 8c)."""

    def __init__(self, cin: int, c: int, norm: str):
        super().__init__()
        self.level1 = nn.Sequential(conv_bn(cin, c, 3, norm), DenseBlock(c, norm))
        self.level2 = nn.Sequential(conv_bn(2 * c, 2 * c, 2, norm, 2), DenseBlock(2 * c, norm))
        self.level3 = nn.Sequential(conv_bn(4 * c, 4 * c, 2, norm, 2), DenseBlock(4 * c, norm))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.level1(x)
        f2 = self.level2(f1)
        return f1, f2, self.level3(f2)


class Decoder(nn.Module):
    """Deconv2-ResBlock of Tables 6/7 for `branches` encoders whose features are concatenated."""

    def __init__(self, c: int, branches: int, cout: int, last_block_is_head: bool, norm: str):
        super().__init__()
        self.deconv2 = deconv_bn(8 * c * branches, 4 * c, norm)
        self.conv5 = nn.Sequential(conv_bn(4 * c * (branches + 1), 2 * c, 1, norm), DenseBlock(2 * c, norm))
        self.deconv1 = deconv_bn(4 * c, 2 * c, norm)
        self.conv6 = conv_bn(2 * c * (branches + 1), c, 1, norm)
        if last_block_is_head:  # Table 7: ResBlock2 itself outputs the weight map
            self.tail = nn.Sequential(ResBlock(c, c, norm), ResBlock(c, cout, norm, head=True))
        else:  # Table 6: two residual blocks, then a 3x3 prediction convolution
            self.tail = nn.Sequential(ResBlock(c, c, norm), ResBlock(c, c, norm), nn.Conv2d(c, cout, 3, padding=1))

    def forward(self, feats: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        f1, f2, f3 = (torch.cat(level, 1) for level in zip(*feats))
        x = self.conv5(torch.cat([f2, self.deconv2(f3)], 1))
        x = self.conv6(torch.cat([f1, self.deconv1(x)], 1))
        return self.tail(x)


def _base_channels(width: float) -> int:
    c = int(round(64 * width / 4)) * 4  # dense blocks need a multiple of 4
    if c < 4:
        raise UsageError(f"width {width} leaves fewer than 4 base channels (paper: width 1.0 = 64)")
    return c


class NeuroRefocusNet(nn.Module):
    """Refocuses an sRGB image to another focus time with the neuromorphic stream between the two.

    forward(image (B,3,H,W) sRGB [0,1], nfs (B,64,H,W)) -> refocused sRGB image (B,3,H,W).
    - events: `nfs` is the signed event stack from the input time to the target time; the image
      encoder sees log(image) and the net predicts the per-channel log-intensity residual R of Eq. 8,
      so out = exp(log(image) + R) (global residual connection).
    - spikes: `nfs` holds spike planes around the target time; their mean is the TFP intensity, which
      replaces the input's luma while keeping its chroma (Eq. 9); the net refines that initial image
      with a residual, seeing the initial image and the raw spike planes.
    """

    def __init__(self, modality: str = "events", width: float = 1.0, nfs_channels: int = NFS_BINS,
                 norm: str = "group"):
        super().__init__()
        if modality not in MODALITIES:
            raise UsageError(f"modality must be one of {MODALITIES}, got {modality!r}")
        self.modality, self.width, self.nfs_channels = modality, width, nfs_channels
        c = _base_channels(width)
        self.image_encoder = Encoder(3, c, norm)
        self.nfs_encoder = Encoder(nfs_channels, c, norm)
        self.decoder = Decoder(c, branches=2, cout=3, last_block_is_head=False, norm=norm)

    def initial_image(self, image: torch.Tensor, nfs: torch.Tensor) -> torch.Tensor:
        """What the net refines: the input (events) or the TFP luma with the input's chroma (spikes)."""
        if self.modality == "events":
            return image
        return luma_chroma_merge(nfs.mean(1, keepdim=True), image)

    def forward(self, image: torch.Tensor, nfs: torch.Tensor) -> torch.Tensor:
        _check_input(image, nfs, self.nfs_channels)
        base = self.initial_image(image, nfs)
        if self.modality == "events":
            log_img = torch.log(base.float() + LOG_EPS)
            residual = self.decoder([self.image_encoder(log_img), self.nfs_encoder(nfs)])
            return (torch.exp(log_img + residual.float()) - LOG_EPS).clamp(0, 1)
        residual = self.decoder([self.image_encoder(base), self.nfs_encoder(nfs)])
        return (base.float() + residual.float()).clamp(0, 1)


class NeuroMergeNet(nn.Module):
    """Merges a refocused stack of any size with weights predicted per image (Eqs. 15-16).

    forward(stack (B,N,3,H,W) sRGB, nfs (B,N,1,H,W)) -> (merged (B,3,H,W), weights (B,N,H,W)).
    One shared U-Net maps each image with its neuromorphic slice to an initial weight map; the final
    weights are softmax(alpha * initial) over the stack, applied to all three channels (Eq. 5).
    """

    def __init__(self, width: float = 1.0, alpha: float = 1.0, norm: str = "group"):
        super().__init__()
        if alpha <= 0:
            raise UsageError(f"softmax temperature alpha must be positive, got {alpha}")
        self.width, self.alpha = width, alpha
        c = _base_channels(width)
        self.encoder = Encoder(4, c, norm)
        self.decoder = Decoder(c, branches=1, cout=1, last_block_is_head=True, norm=norm)

    def initial_weights(self, stack: torch.Tensor, nfs: torch.Tensor) -> torch.Tensor:
        if stack.ndim != 5 or stack.shape[2] != 3 or nfs.shape != (*stack.shape[:2], 1, *stack.shape[3:]):
            raise UsageError(f"expected stack (B,N,3,H,W) and nfs (B,N,1,H,W), got {tuple(stack.shape)} "
                             f"and {tuple(nfs.shape)}")
        b, n, _, h, w = stack.shape
        x = torch.cat([stack, nfs], 2).reshape(b * n, 4, h, w)
        _check_spatial(x)
        return self.decoder([self.encoder(x)]).reshape(b, n, h, w)

    def forward(self, stack: torch.Tensor, nfs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.alpha * self.initial_weights(stack, nfs).float(), dim=1)
        merged = (weights.unsqueeze(2) * stack.float()).sum(1)
        return merged, weights


def _check_spatial(x: torch.Tensor) -> None:
    if x.shape[-1] % 4 or x.shape[-2] % 4:
        raise UsageError(f"height and width must be multiples of 4 (two 2x downsamplings), got "
                         f"{tuple(x.shape[-2:])}; use pad_to_multiple")


def _check_input(image: torch.Tensor, nfs: torch.Tensor, nfs_channels: int) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise UsageError(f"expected image (B,3,H,W), got {tuple(image.shape)}")
    if nfs.shape != (image.shape[0], nfs_channels, *image.shape[2:]):
        raise UsageError(f"expected nfs {(image.shape[0], nfs_channels, *image.shape[2:])}, got {tuple(nfs.shape)}")
    _check_spatial(image)


def pad_to_multiple(x: torch.Tensor, m: int = 4) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pads the last two dims up to multiples of m; returns the tensor and the original size."""
    h, w = x.shape[-2:]
    ph, pw = -h % m, -w % m
    if ph or pw:
        flat = x.reshape(-1, *x.shape[-3:])
        x = F.pad(flat, (0, pw, 0, ph), mode="replicate").reshape(*x.shape[:-2], h + ph, w + pw)
    return x, (h, w)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(stage: str, modality: str, width: float, alpha: float = 1.0, norm: str = "group") -> nn.Module:
    """The network of a training stage; the single place that maps a checkpoint's config to a model."""
    if stage == "refocus":
        return NeuroRefocusNet(modality, width, norm=norm)
    if stage == "merge":
        return NeuroMergeNet(width, alpha, norm)
    raise UsageError(f"stage must be 'refocus' or 'merge', got {stage!r}")
