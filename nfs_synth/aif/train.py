"""Training of NeuroRefocusNet and NeuroMergeNet (paper Section 3.6).

Adam at 5e-4; the paper's schedule for 100 epochs (constant for 50, then /10 every 20) expressed as
fractions of the run (constant for half, then /10 every fifth), so shorter runs keep its shape; loss
Eq. 17. Every epoch writes RUN/last.pt (atomically) and a row of RUN/log.csv. A resumed run restores
model, optimiser and epoch, and its data order depends only on (seed, epoch), so resuming yields what
an uninterrupted run would have. Mixed precision: bf16 autocast on CPUs with native bf16
(AVX512-BF16 or AMX; elsewhere it is emulated and slower, see benchmarks/training.py), bf16 (or fp16
with loss scaling) on CUDA.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from nfs_synth.aif.losses import Eq17Loss, PerceptualLoss
from nfs_synth.aif.metrics import psnr_of_mse
from nfs_synth.aif.nets import build, count_parameters
from nfs_synth.aif.representations import dense_nfs
from nfs_synth.corpus.atomic import atomic_path
from nfs_synth.errors import CheckpointError, UsageError

CHECKPOINT_FORMAT = "nfs_synth.aif checkpoint v1"
LAST = "last.pt"
LOG = "log.csv"
_LOG_FIELDS = ("epoch", "lr", "loss", "perc", "mse", "psnr_db", "samples", "seconds", "samples_per_s")
# what runs saved before a field existed were trained with
LEGACY = {"norm": "batch"}
# fields that define the run; a resume keeps the checkpoint's values and rejects different ones
RUN_DEFINING = ("stage", "modality", "epochs", "width", "norm", "alpha", "lr", "seed", "crop", "batch_size",
                "samples_per_scene", "stack_size", "perceptual", "perceptual_weight", "mse_weight", "detail_weight", "view")


@dataclasses.dataclass
class TrainConfig:
    stage: str                      # "refocus" | "merge"
    modality: str                   # "events" | "spikes"
    corpus: str
    out: str
    epochs: int = 100
    batch_size: int = 4
    crop: int = 256
    width: float = 1.0              # channel multiplier; 1.0 = Tables 6/7
    norm: str = "group"             # "group" | "batch" (Tables 6/7), nets.NORMS
    alpha: float = 1.0              # NeuroMergeNet softmax temperature (Eq. 16; the paper gives no value)
    lr: float = 5e-4
    seed: int = 0
    samples_per_scene: int = 20
    stack_size: int = 8             # merge stage
    refocus_checkpoint: str | None = None  # merge stage: None = oracle stack of rendered frames
    perceptual: str = "vgg16"       # "vgg19" | "vgg16" | "random-for-tests"
    perceptual_weight: float = 0.5  # Eq. 17's alpha
    mse_weight: float = 200.0       # Eq. 17's beta
    detail_weight: float = 0.0      # > 0: the MSE weighted toward the target's sharp regions (losses.detail_weights)
    vgg19_weights: str | None = None
    workers: int = 2
    device: str = "auto"            # "auto" | "cpu" | "cuda"
    amp: str = "auto"               # "auto" | "off" | "bf16" | "fp16"
    on_error: str = "skip"          # a scene file that cannot be used: "skip" (named) or "stop"
    cache: str | None = None        # training-input cache (`nfs-synth prepare`): the same samples, faster
    view: str = "sensor"            # "sensor" | "rgb": what a hybrid rig gives the net (`rig_view`)


def lr_at(epoch: int, epochs: int, base_lr: float) -> float:
    """The paper's step schedule for epoch `epoch` (0-based) of a run of `epochs` epochs."""
    constant, step = epochs // 2, max(1, epochs // 5)
    if epoch < constant:
        return base_lr
    return base_lr * 0.1 ** ((epoch - constant) // step + 1)


def _cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        if device.type != "cuda":
            raise UsageError("fp16 autocast is for CUDA; use --amp bf16 or off on the CPU")
        return torch.float16
    if amp != "auto":
        raise UsageError(f"amp must be auto, off, bf16 or fp16, got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_native_bf16() else None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:  # torch lists every backend it knows; name the usual ones instead
        raise UsageError(f"--device must be auto, cpu or cuda (or cuda:N), got {name!r}") from None


def forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The image a stage's network produces for a batch from RefocusDataset or MergeDataset."""
    if "stack" in batch:
        return model(batch["stack"], batch["nfs"])[0]
    return model(batch["image"], batch["nfs"])


def place(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model on `device`; channels-last on CUDA, where cuDNN's convolutions (tensor cores under
    autocast) run fastest in it (on the CPU it is slower for these nets, so it is left out there)."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A loader batch on the device, compact samples expanded there (`dense_nfs`); images and planes
    channels-last on CUDA, as `place` puts the model."""
    batch = dense_nfs({k: v.to(device, non_blocking=True) for k, v in batch.items()})
    if device.type == "cuda":
        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
    return batch


def train_step(model, batch, loss_fn, optimizer, amp_dtype=None, scaler=None) -> tuple[float, dict]:
    """One optimisation step; returns the loss and its parts."""
    device = next(model.parameters()).device
    batch = to_device(batch, device)
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with ctx:
        output = forward(model, batch)
        loss, parts = loss_fn(output, batch["target"])
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return float(loss.detach()), parts


# ---------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, model, optimizer, config: TrainConfig, epoch: int) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(config), "epoch": epoch,
               "model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "parameters": count_parameters(model)}
    with atomic_path(path) as tmp:          # a crash mid-save never leaves a half-written last.pt
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint's dict, or CheckpointError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types (RuntimeError, UnpicklingError, EOFError...)
        raise CheckpointError(f"checkpoint {path} is corrupted or truncated and cannot be read "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an nfs_synth network checkpoint ({CHECKPOINT_FORMAT})")
    missing = {"config", "epoch", "model", "optimizer"} - payload.keys()
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}")
    return payload


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """An eval-mode network and its training config from a checkpoint."""
    payload = load_checkpoint(path)
    cfg = payload["config"]
    norm = cfg.get("norm", LEGACY["norm"])
    model = build(cfg["stage"], cfg["modality"], cfg["width"], cfg["alpha"], norm)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit a {cfg['stage']} network of width "
                              f"{cfg['width']} and {norm} norm: {str(err).splitlines()[0]}") from None
    return model.to(device).eval(), cfg


# ---------------------------------------------------------------- the loop


def check_crop(scenes: list[Path], crop: int, view: str) -> None:
    """The datasets reject images smaller than the crop; this also says which --crop fits them all."""
    import h5py

    images = "rgb/captures" if view == "rgb" else "frames"
    sizes = {}
    for path in scenes:
        with h5py.File(path, "r") as h5:
            if images in h5:  # (a scene without them is the dataset's error to report)
                sizes[path] = h5[images].shape[1:3]
    if min(map(min, sizes.values()), default=crop) < crop:
        path, (h, w) = min(sizes.items(), key=lambda item: min(item[1]))
        raise UsageError(f"{path}: {images} of {h}x{w} px are smaller than the {crop} px crop; pass --crop N "
                         f"with N a multiple of 4 of at most {min(h, w)}")


def make_dataset(cfg: TrainConfig, split: str = "train", log=print):
    from nfs_synth.aif.datasets import MergeDataset, RefocusDataset, corpus_scenes, usable_scenes

    scenes = usable_scenes(corpus_scenes(cfg.corpus, split), cfg.modality, cfg.on_error, log, cfg.view)
    check_crop(scenes, cfg.crop, cfg.view)
    common = dict(modality=cfg.modality, crop=cfg.crop, samples_per_scene=cfg.samples_per_scene, seed=cfg.seed,
                  cache=cfg.cache, view=cfg.view)
    if cfg.stage == "refocus":
        return RefocusDataset(scenes, **common)
    net = None
    if cfg.refocus_checkpoint:
        net, net_cfg = load_model(cfg.refocus_checkpoint)
        if net_cfg["stage"] != "refocus":
            raise UsageError(f"{cfg.refocus_checkpoint} is a {net_cfg['stage']} checkpoint, not a refocus one")
    return MergeDataset(scenes, stack_size=cfg.stack_size, refocus_net=net, **common)


def _resumed_config(cfg: TrainConfig, saved: dict) -> TrainConfig:
    if Path(saved["corpus"]).resolve() != Path(cfg.corpus).resolve():   # stored resolved since it is given
        raise UsageError(f"cannot resume: the run was started with --corpus {saved['corpus']}, now --corpus "
                         f"{cfg.corpus}; start a new run directory to train on another corpus")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    saved = {name: saved.get(name, LEGACY.get(name, defaults[name])) for name in RUN_DEFINING}
    for name in RUN_DEFINING:
        new, old = getattr(cfg, name), saved[name]
        if new is not None and new != old:
            raise UsageError(f"cannot resume: the run was started with {name}={old!r}, now {name}={new!r}; "
                             "start a new run directory to change it")
    return dataclasses.replace(cfg, **{name: saved[name] for name in RUN_DEFINING})


def train(cfg: TrainConfig, resume: bool = False, dataset=None, log=print) -> Path:
    """Trains (or resumes) a run in cfg.out; returns the path of its last checkpoint."""
    out = Path(cfg.out)
    ckpt_path = out / LAST
    payload = None
    if resume:
        payload = load_checkpoint(ckpt_path)
        cfg = _resumed_config(cfg, payload["config"])
    elif ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} exists: pass --resume to continue that run or choose another --out")
    cfg = dataclasses.replace(cfg, corpus=str(Path(cfg.corpus).resolve()))   # what a resume compares
    device = resolve_device(cfg.device)
    amp_dtype = autocast_dtype(cfg.amp, device)
    torch.manual_seed(cfg.seed)
    model = place(build(cfg.stage, cfg.modality, cfg.width, cfg.alpha, cfg.norm), device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        start = int(payload["epoch"])
    loss_fn = Eq17Loss(PerceptualLoss(cfg.perceptual, cfg.vgg19_weights), cfg.perceptual_weight,
                       cfg.mse_weight, cfg.detail_weight).to(device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    dataset = dataset if dataset is not None else make_dataset(cfg, log=log)
    log(f"{cfg.stage}/{cfg.modality}: {count_parameters(model):,} parameters, {len(dataset)} samples/epoch, "
        f"device {device}, autocast {amp_dtype or 'off'}, epochs {start}..{cfg.epochs}")
    loader = make_loader(dataset, cfg, device)
    out.mkdir(parents=True, exist_ok=True)  # only once the run's settings and data are known to be good
    new_log = not (out / LOG).exists()
    with open(out / LOG, "a", newline="") as fh:
        writer = csv.DictWriter(fh, _LOG_FIELDS)
        if new_log:
            writer.writeheader()
        for epoch in range(start, cfg.epochs):
            row = _run_epoch(model, loader, loss_fn, optimizer, cfg, epoch, amp_dtype, scaler)
            writer.writerow(row)
            fh.flush()
            save_checkpoint(ckpt_path, model, optimizer, cfg, epoch + 1)
            log(", ".join(f"{k} {v}" for k, v in row.items()))
    return ckpt_path


class EpochSampler(Sampler[int]):
    """One epoch's shuffled sample indices, each carrying its epoch as (epoch + 1) * n + i (the datasets
    decode it), so persistent loader workers move to the next epoch without being restarted."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(((self.epoch + 1) * self.n + torch.randperm(self.n, generator=gen)).tolist())


class _Batches(TorchDataset):
    """A dataset of dicts of tensors whose loader workers build whole batches, of compact samples where
    the dataset has them (`train_step` expands them on the device): each sample is written straight
    into its batch's tensors, so one tensor per key crosses to the training process and nothing is
    collated there (with float32 samples, 17 MB each at 256 px, those copies halved the loader's rate)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[index]

    def _item(self, index: int) -> dict[str, torch.Tensor]:
        compact = getattr(self.dataset, "compact_item", None)
        return compact(index) if compact else self.dataset[index]

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        first = self._item(indices[0])
        batch = {key: torch.empty((len(indices), *value.shape), dtype=value.dtype) for key, value in first.items()}
        for n, index in enumerate(indices):
            for key, value in (first if n == 0 else self._item(index)).items():
                batch[key][n] = value
        return batch


def _as_is(batch: dict) -> dict:
    return batch


def make_loader(dataset, cfg: TrainConfig, device: torch.device) -> DataLoader:
    """Batches of `dataset` for every epoch from one loader: workers persist across epochs (no restart
    and re-opened files per epoch), build whole batches (`_Batches`), prefetch 4 batches each, and pin
    memory for a GPU."""
    workers = cfg.workers
    loader = DataLoader(_Batches(dataset), batch_size=cfg.batch_size, sampler=EpochSampler(len(dataset), cfg.seed),
                        collate_fn=_as_is, drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None,
                        worker_init_fn=_one_thread if workers else None)
    if len(loader) == 0:
        raise UsageError(f"{len(dataset)} samples make no full batch of {cfg.batch_size}")
    return loader


def _run_epoch(model, loader, loss_fn, optimizer, cfg, epoch, amp_dtype, scaler) -> dict:
    lr = lr_at(epoch, cfg.epochs, cfg.lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loader.sampler.set_epoch(epoch)
    model.train()
    totals = {"loss": 0.0, "perc": 0.0, "mse": 0.0}
    n, t0 = 0, time.perf_counter()
    for batch in loader:
        loss, parts = train_step(model, batch, loss_fn, optimizer, amp_dtype, scaler)
        if not math.isfinite(loss):
            raise FloatingPointError(f"non-finite loss at epoch {epoch}; lower --lr or use --amp off")
        for key, value in (("loss", loss), *parts.items()):
            totals[key] += value
        n += 1
    seconds = time.perf_counter() - t0
    mean = {k: v / n for k, v in totals.items()}
    samples = n * cfg.batch_size
    return {"epoch": epoch + 1, "lr": f"{lr:.3g}", "loss": f"{mean['loss']:.5g}", "perc": f"{mean['perc']:.5g}",
            "mse": f"{mean['mse']:.5g}", "psnr_db": f"{psnr_of_mse(mean['mse']):.2f}",
            "samples": samples, "seconds": f"{seconds:.1f}", "samples_per_s": f"{samples / seconds:.3g}"}


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # workers only read and bin data; the main process owns the cores
