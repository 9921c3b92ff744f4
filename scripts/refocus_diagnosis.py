"""Where a spikes refocus net goes wrong: its residual by spike rate, in inference mode and with the
batch's own normalisation statistics (docs/networks.md, "Normalisation: the bright-scene failure").

For each scene, 11 target times of the sweep from the first frame as input (the evaluation protocol):
PSNR against the rendered frame at the target of the net's initial image (Eq. 9: TFP luma, input chroma),
of its output in inference mode (`eval()`: batch norm's running statistics) and of its output with the
statistics of the scene's own 11 samples (`train()` mode, no weights change), then the mean absolute
residual (summed over RGB) by the pixel's spike rate.

    python scripts/refocus_diagnosis.py runs/lc/curve/refocus-sp-r18-m6/last.pt --corpus runs/lc/test --scenes 4,17,2
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from nfs_synth.aif.learned import scene_stream
from nfs_synth.aif.metrics import psnr_of_mse
from nfs_synth.aif.representations import spike_planes
from nfs_synth.aif.scene import EvalScene
from nfs_synth.aif.train import load_model

RATE_BINS = (0.0, 0.3, 0.6, 0.9, 1.01)


def _psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    return psnr_of_mse(float(torch.mean((pred - target) ** 2)))


@torch.no_grad()
def diagnose(net, scene: EvalScene) -> dict:
    frames = torch.from_numpy(scene.frames_srgb).permute(0, 3, 1, 2)
    ts = scene.timestamps_us
    targets = np.linspace(0, len(ts) - 1, 12).round().astype(int)[1:]
    reader, step = scene_stream(scene, "spikes")
    nfs = torch.from_numpy(np.stack([spike_planes(reader, int(ts[j]), step) for j in targets]))
    image = frames[:1].expand(len(targets), -1, -1, -1)
    base = net.initial_image(image, nfs)
    out = {"initial": _psnr(base, frames[targets])}
    for mode in ("inference", "batch statistics"):
        net.train(mode == "batch statistics")
        out[mode] = _psnr(net(image, nfs), frames[targets])
    net.eval()
    residual = net.decoder([net.image_encoder(base), net.nfs_encoder(nfs)]).abs().sum(1)
    rate = nfs.mean(1)
    out["residual by rate"] = {}
    for lo, hi in zip(RATE_BINS[:-1], RATE_BINS[1:]):
        inside = (rate >= lo) & (rate < hi)
        if inside.any():
            out["residual by rate"][f"{lo:.1f}-{min(hi, 1.0):.1f}"] = (float(inside.float().mean()),
                                                                       float(residual[inside].mean()))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="a spikes refocus run's last.pt")
    p.add_argument("--corpus", type=Path, required=True)
    p.add_argument("--scenes", default="0", help="comma-separated indices into the corpus's sorted scene files")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    net, cfg = load_model(args.checkpoint)
    if (cfg["stage"], cfg["modality"]) != ("refocus", "spikes"):
        raise SystemExit(f"{args.checkpoint} is a {cfg['stage']}/{cfg['modality']} net, not refocus/spikes")
    files = sorted((args.corpus / "scenes").glob("*.h5"))
    for index in (int(i) for i in args.scenes.split(",")):
        with EvalScene(files[index]) as scene:
            d = diagnose(net, scene)
        bins = "  ".join(f"rate {k}: {frac:.0%} of pixels, |res| {res:.3f}" for k, (frac, res) in d["residual by rate"].items())
        print(f"{files[index].stem} ({cfg.get('norm', 'batch')} norm): PSNR initial {d['initial']:.2f}, inference "
              f"{d['inference']:.2f}, batch statistics {d['batch statistics']:.2f} dB\n    {bins}")


if __name__ == "__main__":
    main()
