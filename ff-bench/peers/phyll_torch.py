#!/usr/bin/env python3
"""PyTorch peer of phyff's PhyLL training, for `cargo xtask bench-peers`.

Reads the directory written by phyff's side (`cargo run --release -p ff-bench --example
peer_epoch -- --config NAME --out DIR`): `manifest.json` and the raw little-endian arrays beside
it (data batch, labels, initial layers and prototypes, the physical systems' exact parameters,
the negative labels and phyff's losses of one check batch). Then:

1. check: trains the check batch from phyff's initial state with phyff's negative labels and
   compares the per-block mean losses with phyff's (same computation, up to rounding);
2. timing: `warmup` untimed then `repeats` timed units (one epoch, or one batch of an epoch),
   continuing from the checked state, negatives drawn with torch's generator;
3. writes `DIR/torch.json` (seconds per unit and per epoch, per-phase breakdown, the check).

The schedule, per mini-batch (docs/science.md, the PhyLL schedule): build positives and
negatives (label embedding as phyff does it), then for each block: query the physical layer
once on the positives and once on the negatives (no gradient), concatenate the skip, take
`n_inner` Adam steps on the block's `nn.Linear` with the physical outputs held fixed (loss
`softplus(-alpha (g_pos - g_neg))`, goodness `cos(|z|, xi)`), and pass the detached `z` on.

Only the standard library, numpy (to read the arrays) and torch are used.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"f32": "<f4", "f64": "<f8", "i64": "<i8"}


def load(directory, spec):
    """An array described in the manifest as {file, dtype, shape}."""
    a = np.fromfile(directory / spec["file"], dtype=DTYPES[spec["dtype"]])
    return a.reshape(spec["shape"])


class MlpTwin(nn.Module):
    """phyff's `Twin`: standardise, MLP (SiLU hidden layers), un-standardise."""

    def __init__(self, d, directory, dtype):
        super().__init__()
        sizes, acts = d["sizes"], d["activations"]
        flat = torch.from_numpy(load(directory, d["params"]).copy()).to(dtype)
        layers, off = [], 0
        for (d_in, d_out), act in zip(zip(sizes[:-1], sizes[1:]), acts):
            lin = nn.Linear(d_in, d_out, dtype=dtype)
            with torch.no_grad():
                lin.weight.copy_(flat[off : off + d_out * d_in].view(d_out, d_in))
                off += d_out * d_in
                lin.bias.copy_(flat[off : off + d_out])
                off += d_out
            layers.append(lin)
            if act == "silu":
                layers.append(nn.SiLU())
            elif act != "identity":
                raise ValueError(f"twin activation {act!r} is not implemented by the peer")
        if off != flat.numel():
            raise ValueError(f"twin parameters: used {off} of {flat.numel()}")
        self.mlp = nn.Sequential(*layers).requires_grad_(False)
        t = lambda k: torch.from_numpy(load(directory, d[k]).copy()).to(dtype)
        self.in_mean, self.in_sd, self.out_mean, self.out_sd = t("in_mean"), t("in_sd"), t("out_mean"), t("out_sd")

    def forward(self, h):
        return self.mlp((h - self.in_mean) / self.in_sd) * self.out_sd + self.out_mean


class Optics(nn.Module):
    """phyff's `OpticsSystem`: SLM -> FFT -> input pupil -> medium T -> output pupil -> inverse
    FFT -> |E| (or |E|^2) -> average pooling. The SLM map, pupils and T are phyff's own."""

    def __init__(self, d, directory, dtype):
        super().__init__()
        self.n = d["field_size"]
        self.cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        src = torch.from_numpy(load(directory, d["slm_source"]).copy())
        self.pix = torch.nonzero(src >= 0).flatten()
        self.src = src[self.pix]
        self.pupil_in = torch.from_numpy(load(directory, d["pupil_in"]).copy())
        self.pupil_out = torch.from_numpy(load(directory, d["pupil_out"]).copy())
        re = torch.from_numpy(load(directory, d["medium_re"]).copy())
        im = torch.from_numpy(load(directory, d["medium_im"]).copy())
        # Rows are samples: modes_out = modes_in @ T^T.
        self.t_t = torch.complex(re, im).to(self.cdtype).T.contiguous()
        self.encoding, self.detection = d["encoding"], d["detection"]
        p = d["pooling"]
        self.pool = (p["kernel"], p["stride"], p["padding"])

    def forward(self, h):
        b, n2 = h.shape[0], self.n * self.n
        values = h[:, self.src]
        if self.encoding == "amplitude":
            values = values.to(self.cdtype)
        else:
            values = torch.polar(torch.ones_like(values), math.pi * values)
        field = torch.zeros(b, n2, dtype=self.cdtype)
        field[:, self.pix] = values
        spectrum = torch.fft.fft2(field.view(b, self.n, self.n)).view(b, n2)
        modes = spectrum[:, self.pupil_in] @ self.t_t
        out = torch.zeros(b, n2, dtype=self.cdtype)
        out[:, self.pupil_out] = modes
        camera = torch.fft.ifft2(out.view(b, self.n, self.n))
        detected = camera.abs() if self.detection == "amplitude" else camera.abs().square()
        k, s, p = self.pool
        return F.avg_pool2d(detected.unsqueeze(1), k, s, p).flatten(1)


class Peer:
    """The network: per block a physical system, a skip flag, an `nn.Linear`, a prototype and
    an Adam optimiser."""

    def __init__(self, m, directory):
        self.dtype = torch.float64 if m["precision"] == "f64" else torch.float32
        self.m = m
        self.k = m["embedding"]["num_classes"]
        self.blocks = []
        for b in m["blocks"]:
            s = b["system"]
            system = {"mlp_twin": MlpTwin, "optics": Optics}[s["kind"]](s, directory, self.dtype)
            lin = nn.Linear(b["d_in"], b["d_out"], dtype=self.dtype)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(load(directory, b["weights"]).copy()))
                lin.bias.copy_(torch.from_numpy(load(directory, b["bias"]).copy()))
            xi = torch.from_numpy(load(directory, b["prototype"]).copy()).to(self.dtype).unsqueeze(0)
            a = m["adam"]
            opt = torch.optim.Adam(lin.parameters(), lr=m["lr"], betas=(a["beta1"], a["beta2"]), eps=a["eps"])
            self.blocks.append({"system": system, "skip": b["skip"], "linear": lin, "xi": xi, "opt": opt})

    def embed(self, x, labels, value):
        e = self.m["embedding"]
        rows = torch.arange(x.shape[0])
        if e["kind"] == "overwrite":
            out = x.clone()
            out[:, : self.k] = 0
            out[rows, labels] = value
            return out
        h, w, band = e["height"], e["width"], e["band_rows"]
        out = torch.zeros(x.shape[0], h + 2 * band, w, dtype=x.dtype)
        out[:, band : band + h, :] = x.view(-1, h, w)
        out[rows, labels, :] = value
        out[rows, band + h + labels, :] = value
        return out.flatten(1)

    def wrong_labels(self, y, gen):
        r = torch.randint(0, self.k - 1, y.shape, generator=gen)
        return r + (r >= y).long()

    def goodness(self, z, xi):
        return F.cosine_similarity(z.abs(), xi, dim=1, eps=self.m["cosine_eps"])

    def train_batch(self, x, y, neg, phases):
        """One PhyLL mini-batch; adds each phase's seconds to `phases`; returns the mean loss
        over the inner steps, per block."""
        alpha, n_inner = self.m["alpha"], self.m["n_inner"]
        t = time.perf_counter()
        value = x.abs().max()
        hp, hn = self.embed(x, y, value), self.embed(x, neg, value)
        phases["labels_and_embedding"] += time.perf_counter() - t
        losses = []
        for blk in self.blocks:
            t = time.perf_counter()
            with torch.no_grad():
                pp, pn = blk["system"](hp), blk["system"](hn)
            phases["physical"] += time.perf_counter() - t
            t = time.perf_counter()
            up, un = (torch.cat([pp, hp], 1), torch.cat([pn, hn], 1)) if blk["skip"] else (pp, pn)
            phases["skip_concat"] += time.perf_counter() - t
            t = time.perf_counter()
            lin, xi, opt = blk["linear"], blk["xi"], blk["opt"]
            total = 0.0
            for _ in range(n_inner):
                opt.zero_grad(set_to_none=True)
                g_pos, g_neg = self.goodness(lin(up), xi), self.goodness(lin(un), xi)
                loss = F.softplus(-alpha * (g_pos - g_neg)).mean()
                loss.backward()
                opt.step()
                total += loss.item()
            phases["inner_steps"] += time.perf_counter() - t
            losses.append(total / n_inner)
            t = time.perf_counter()
            with torch.no_grad():
                hp, hn = lin(up), lin(un)
            phases["pass_on"] += time.perf_counter() - t
        return losses


PHASES = ["labels_and_embedding", "physical", "skip_concat", "inner_steps", "pass_on"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, type=Path, help="the directory written by peer_epoch")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2: both cores)")
    ap.add_argument("--warmup", type=int, help="untimed units (default: the manifest's)")
    ap.add_argument("--repeats", type=int, help="timed units, median reported (default: the manifest's)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    m = json.loads((args.dir / "manifest.json").read_text())
    peer = Peer(m, args.dir)
    x = torch.from_numpy(load(args.dir, m["x"]).copy()).to(peer.dtype)
    y = torch.from_numpy(load(args.dir, m["y"]).copy())
    name = m["config"]

    # 1. The check batch, from phyff's initial state with phyff's negatives.
    c = m["check"]
    rows = c["rows"]
    neg = torch.from_numpy(load(args.dir, c["negatives"]).copy())
    scratch = dict.fromkeys(PHASES, 0.0)
    losses = peer.train_batch(x[:rows], y[:rows], neg, scratch)
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, c["block_loss"])]
    passed = max(rel) <= c["tolerance"]
    print(
        f"torch {name}: check batch of {rows}: block losses {losses} vs phyff {c['block_loss']} "
        f"(max relative difference {max(rel):.2e}, tolerance {c['tolerance']:.0e}: {'ok' if passed else 'FAILED'})",
        file=sys.stderr,
    )

    # 2. Timing.
    warmup = m["timing"]["warmup"] if args.warmup is None else args.warmup
    repeats = m["timing"]["repeats"] if args.repeats is None else args.repeats
    gen = torch.Generator().manual_seed(m["seed"])
    samples, phase_samples = [], []
    for r in range(warmup + repeats):
        phases = dict.fromkeys(PHASES, 0.0)
        t = time.perf_counter()
        xb, yb = x[torch.arange(x.shape[0])], y.clone()  # the trainer's gather
        peer.train_batch(xb, yb, peer.wrong_labels(yb, gen), phases)
        dt = time.perf_counter() - t
        if r >= warmup:
            samples.append(dt)
            phase_samples.append(phases)
            if m["unit"] == "batch":
                print(f"torch {name}: batch {r + 1 - warmup}/{repeats}: {dt:.3f} s", file=sys.stderr)
    per_unit = statistics.median(samples)
    per_epoch = per_unit * m["batches_per_epoch"]
    breakdown = {p: statistics.median(s[p] for s in phase_samples) for p in PHASES}
    breakdown["total"] = sum(breakdown[p] for p in PHASES)
    out = {
        "side": "torch",
        "config": name,
        "unit": m["unit"],
        "batches_per_epoch": m["batches_per_epoch"],
        "samples_seconds": samples,
        "seconds_per_unit": per_unit,
        "seconds_per_epoch": per_epoch,
        "breakdown_seconds_per_batch": breakdown,
        "check": {"torch_block_loss": losses, "phyff_block_loss": c["block_loss"], "max_rel_diff": max(rel), "passed": passed},
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "python": sys.version.split()[0],
    }
    tmp = args.dir / "torch.json.tmp"
    tmp.write_text(json.dumps(out, indent=2))
    os.replace(tmp, args.dir / "torch.json")
    print(f"torch {name}: {per_unit:.6f} s per {m['unit']} (median of {len(samples)}), {per_epoch:.6f} s per epoch")


if __name__ == "__main__":
    main()
