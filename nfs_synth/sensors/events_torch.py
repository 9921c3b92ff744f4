"""The event model in torch, for a GPU (`TorchEventSimulator`).

The same model, options, input checks and output as `EventSimulator` (docs/events.md), as
whole-frame tensor operations: every wave of still-active pixels is a handful of kernels on the
device, and the residual stays there between frames.  Random numbers come from a torch
generator seeded from the caller's rng, so the events have the same statistics as the numba
simulator's, not the same values; they are reproducible on one device type and torch version.
Where the numba kernel needs a scalar slow path (ziggurat rejections, uncertain polarity), the
tensors take the exact formulas for every pixel: `torch.randn` is exact and the polarity
probability is evaluated everywhere.
"""
from __future__ import annotations

import numpy as np
import torch

from nfs_synth.sensors.dvs import EVENT_DTYPE
from nfs_synth.errors import EventsError
from nfs_synth.sensors.event_simulator import EventSimulator


def _p_on(mu, s2, r):
    """P(ON) from residual r: drifted Brownian motion reaches +A = 1 - r before -B = 1 + r
    (the numba kernel's `_p_on`: expm1 of non-positive arguments, certain beyond 40)."""
    a, b = 1.0 - r, 1.0 + r
    g = 2.0 * mu / s2
    towards_on = torch.expm1(-g * b) / torch.expm1(-g * (a + b))
    towards_off = 1.0 - torch.expm1(g * a) / torch.expm1(g * (a + b))
    p = torch.where(mu > 0, towards_on, torch.where(mu < 0, towards_off, b / (a + b)))
    p = torch.where((mu > 0) & (2.0 * mu * b > 40.0 * s2), 1.0, p)
    return torch.where((mu < 0) & (-2.0 * mu * a > 40.0 * s2), 0.0, p)


def _passage_time(e, c, s2, z2, u):
    """Inverse Gaussian first-passage time to e with drift c >= 0 (Michael-Schucany-Haas with
    the cancellation-free root e/D, as the numba kernel's `_passage`; inf without drift and noise)."""
    psi = 0.5 * s2 * z2 / e
    d = c + psi + torch.sqrt(psi * (psi + 2.0 * c))
    return torch.where(u * (d + c) <= d, e / d, e * d / (c * c))


class TorchEventSimulator(EventSimulator):
    """`EventSimulator` on a torch device ("cuda", "cuda:1", "cpu", ...)."""

    def __init__(self, height: int, width: int, params, rng: np.random.Generator, *,
                 device: str | torch.device = "cuda", **options):
        try:
            self.device = torch.device(device)
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError) as exc:
            raise EventsError(f"torch device {device!r} is not available: {exc}") from None
        super().__init__(height, width, params, rng, **options)

    def _init_backend(self):
        self._gen = torch.Generator(device=self.device)
        self._gen.manual_seed(int(self._key) >> 1)
        self._res_dev = torch.as_tensor(self._res, device=self.device).ravel()
        self._l0_dev = None

    def _tensor(self, frame):
        return torch.as_tensor(frame, device=self.device).ravel()

    def _interval_events(self, cur, dt):
        k1, k2, k3, k4, k5, k6 = (float(v) for v in self._k)
        l0 = self._l0_dev if self._l0_dev is not None else self._tensor(self._prev)
        l1 = self._tensor(cur)
        lm = 0.5 * (l0 + l1)
        inv = 1.0 / (lm + k2)
        if self.log_drift:
            signal = k1 * torch.log((l1 + k2) / (l0 + k2)) / dt
        else:
            signal = k1 * (l1 - l0) / dt * inv
        mu = signal + k4 + k5 * lm
        s2 = (k3 * torch.sqrt(lm) * inv + k6) ** 2
        # Waves as in the kernel: every pixel steps, those that fired step again from the reset level.
        idx = torch.arange(l1.numel(), device=self.device)
        t = torch.zeros_like(l1)
        r = self._res_dev
        res_next = torch.empty_like(r)
        times, pixels, polarity = [], [], []
        while idx.numel():
            m, v = mu[idx], s2[idx]
            on = self._rand(idx.numel()) < _p_on(m, v, r)
            e = torch.where(on, 1.0 - r, 1.0 + r).clamp_min(1e-300)
            z = torch.randn(idx.numel(), generator=self._gen, device=self.device, dtype=torch.float64)
            tau = _passage_time(e, m.abs(), v, z * z, self._rand(idx.numel()))
            left = dt - t
            fire = tau < left
            step = e * left / tau  # the reference's carry, for the pixels that do not fire
            done = ~fire
            res_next[idx[done]] = torch.where(on, r + step, r - step)[done]
            idx, t = idx[fire], (t + tau)[fire]
            times.append(t)
            pixels.append(idx)
            polarity.append(on[fire])
            r = torch.zeros_like(t)
        self._res_dev, self._l0_dev = res_next, l1
        return self._sorted_events(torch.cat(times), torch.cat(pixels), torch.cat(polarity))

    def _rand(self, n):
        return torch.rand(n, generator=self._gen, device=self.device, dtype=torch.float64)

    def _sorted_events(self, times, pixels, polarity):
        rounded = torch.round(times).to(torch.int64)  # half to even, as np.rint
        order = torch.sort(rounded, stable=True).indices  # ties: wave, then row, then column
        out = np.empty(order.numel(), EVENT_DTYPE)
        out["t"] = (rounded[order] + self._t_prev).cpu().numpy()
        pix = pixels[order]
        out["x"] = (pix % self.width).cpu().numpy()
        out["y"] = (pix // self.width).cpu().numpy()
        out["p"] = polarity[order].cpu().numpy()
        return out
