"""A simulated lab instrument served over the phyff device protocol (standard library only).

The instrument is a fixed random scattering medium seen by a camera: each input sample ``x``
(``input_len`` values, e.g. SLM pixel amplitudes) is mixed by a seeded complex Gaussian
matrix ``W`` (``output_len x input_len``, entries of variance ``1 / input_len``) and detected
in intensity,

    y_j = |sum_i W_ji x_i|^2 + noise * rms(y) * g_j,     g_j ~ N(0, 1) independent,

where ``rms(y)`` is the root mean square of the sample's noiseless intensities (so ``--noise``
is a relative level: 0.01 is 1 % read noise) and the noise is drawn afresh at every query.
The outputs are in arbitrary intensity units (they scale as the square of the inputs'). Each
query (a batch of samples) also waits ``--delay-ms`` milliseconds, like an instrument's
exposure. ``--seed`` and ``--block`` choose the medium: each block of a phyff network gets its
own medium and noise stream; the same flags give the same medium.

Train through it from the repository's root (one child process per block; phyff fills in
``{block}``, ``{rows}`` and ``{cols}``: block 1 takes the labelled 28x8 digit images, 224
values, block 2 the previous block's 256 outputs as 16x16)::

    target/release/phyff train --system device --no-ablation --epochs 5 --out runs/toy \\
      --device-cmd "python3 python/examples/toy_instrument.py --block {block} --input-shape {rows}x{cols} --output-len 64 --noise 0.01"

Measured on a busy 2-core machine: test accuracy 0.925 (train 0.930) after 5 epochs in 85 s
(phyff's "wall" column; most of it is Python computing the medium, and the final evaluation
scores every test and training sample under all 10 labels: ``--no-train-eval`` skips the
training samples); chance is 0.10. ``--input-shape ROWSxCOLS`` sets ``input_len = ROWS x
COLS``; ``--input-len N`` sets it directly (then ``phyff train`` must feed the block ``N``
values, or it refuses the device with both numbers). As a TCP device, one process per block::

    python3 python/examples/toy_instrument.py --block 0 --input-len 224 --tcp 127.0.0.1:7000 &
    python3 python/examples/toy_instrument.py --block 1 --input-len 256 --tcp 127.0.0.1:7001 &
    target/release/phyff train --system device --device-tcp 127.0.0.1:7000,127.0.0.1:7001 --out runs/toy
"""

import argparse
import os
import random
import sys
import time
from operator import mul

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import phyff_device  # noqa: E402  (found through the path above)


class ToyInstrument:
    """The simulated medium: ``forward`` maps a batch (rows of ``input_len`` floats) to rows of
    ``output_len`` intensities, as in the module's documentation."""

    def __init__(self, input_len, output_len, seed=0, block=0, noise=0.0, delay_ms=0.0):
        if noise < 0 or delay_ms < 0:
            raise ValueError("noise ({}) and delay_ms ({}) must be at least 0".format(noise, delay_ms))
        medium = random.Random("toy instrument medium, seed {}, block {}".format(seed, block))
        sigma = (1.0 / (2.0 * input_len)) ** 0.5  # real and imaginary parts: variance 1 / input_len in all
        self.rows = [
            [complex(medium.gauss(0.0, sigma), medium.gauss(0.0, sigma)) for _ in range(input_len)]
            for _ in range(output_len)
        ]
        self.noise_rng = random.Random("toy instrument noise, seed {}, block {}".format(seed, block))
        self.noise = noise
        self.delay_s = delay_ms / 1000.0
        self.queries = 0

    def forward(self, batch):
        """Measures every sample of ``batch`` (a list of rows of input_len floats)."""
        if self.delay_s:
            time.sleep(self.delay_s)
        self.queries += 1
        out = []
        gauss = self.noise_rng.gauss
        for x in batch:
            y = [abs(sum(map(mul, w, x))) ** 2 for w in self.rows]
            if self.noise:
                level = self.noise * (sum(v * v for v in y) / len(y)) ** 0.5
                y = [v + level * gauss(0.0, 1.0) for v in y]
            out.append(y)
        return out


def parse_shape(text):
    rows, sep, cols = text.partition("x")
    try:
        shape = (int(rows), int(cols))
    except ValueError:
        shape = (0, 0)
    if not sep or min(shape) < 1:
        raise argparse.ArgumentTypeError("expected ROWSxCOLS with positive sizes (e.g. 28x8), got {!r}".format(text))
    return shape


def main(argv=None):
    p = argparse.ArgumentParser(
        description="A simulated instrument (random medium + camera) served as a phyff device."
    )
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--input-len", type=int, help="values per input sample")
    size.add_argument(
        "--input-shape",
        type=parse_shape,
        metavar="ROWSxCOLS",
        help="input sample shape, input_len = ROWS x COLS (pass {rows}x{cols} from phyff)",
    )
    p.add_argument("--output-len", type=int, default=64, help="values per output sample (camera pixels; default 64)")
    p.add_argument(
        "--block",
        type=int,
        default=0,
        help="the block this device plays, from 0 (pass {block} from phyff): each block has its own medium",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the medium and of the noise (default 0)")
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        help="relative Gaussian read noise, a fraction of each sample's RMS intensity (default 0)",
    )
    p.add_argument("--delay-ms", type=float, default=0.0, help="wait per query, in milliseconds (default 0)")
    p.add_argument("--precision", choices=["f64", "f32"], default="f64", help="value width on the wire (default f64)")
    p.add_argument(
        "--tcp",
        metavar="HOST:PORT",
        help="listen on this address instead of stdio (port 0: any free port, printed on stderr)",
    )
    p.add_argument("--sessions", type=int, help="with --tcp: stop after this many sessions (default: serve forever)")
    a = p.parse_args(argv)
    input_len = a.input_len if a.input_len is not None else a.input_shape[0] * a.input_shape[1]
    limit = phyff_device.MAX_SAMPLE_LEN
    if not 1 <= input_len <= limit or not 1 <= a.output_len <= limit:
        p.error("--input-len and --output-len must be from 1 to 2^24, got {} and {}".format(input_len, a.output_len))
    if a.noise < 0 or a.delay_ms < 0:
        p.error("--noise and --delay-ms must be at least 0, got {} and {}".format(a.noise, a.delay_ms))
    instrument = ToyInstrument(input_len, a.output_len, a.seed, a.block, a.noise, a.delay_ms)
    name = "toy instrument (block {}, seed {}, noise {})".format(a.block, a.seed, a.noise)
    phyff_device.serve(
        instrument.forward, input_len, a.output_len, name=name, precision=a.precision, tcp=a.tcp, sessions=a.sessions
    )

if __name__ == "__main__":
    main()
