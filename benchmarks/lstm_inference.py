"""LSTM inference, jaxrnn against Flax, in long round-robin runs (issue 28's question).

`rnn_speed.py` times every peer and the training step too; this script times only the
forward pass of three programs, many rounds, one after another in each round, and prints the
median over rounds of the per-round ratio Flax / program (> 1: faster than Flax), which is
steadier on a shared machine than a ratio of medians:

- ``jaxrnn``: what ``jaxrnn.unroll`` picks (the fused LSTM's forward pass);
- ``hoisted``: a ``lax.scan`` of the cell's step over inputs projected before the loop
  (``Strategy(fused=False)``), the path the issue measured at 2.5x Flax's time;
- ``flax``: ``nn.RNN(nn.OptimizedLSTMCell)``.

    python benchmarks/lstm_inference.py                 # the four sizes, both patterns
    python benchmarks/lstm_inference.py --rounds 21 --configs 64,100,32,512
"""

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn

CONFIGS = [(64, 100, 32, 128), (64, 100, 32, 512), (32, 500, 32, 128), (256, 50, 8, 64)]


def flax_program(b, t, i, h, pattern):
    cell = nn.OptimizedLSTMCell(features=h)

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            if pattern == "every":
                return nn.RNN(cell)(xs)[:, -1]
            return nn.RNN(cell, return_carry=True)(xs)[0][1]

    model = Model()
    return jax.jit(model.apply), model.init(jax.random.key(0), jnp.zeros((b, t, i)))


def jaxrnn_program(b, t, i, h, pattern, strategy=None):
    del b, t
    cell = jaxrnn.lstm(h)
    params = cell.init(jax.random.key(0), i)

    def run(params, xs):
        carry, ys = jaxrnn.unroll(cell, params, xs, strategy=strategy)
        return ys[:, -1] if pattern == "every" else carry.h

    return jax.jit(run), params


def seconds(fn, params, xs, steps):
    start = time.perf_counter()
    for _ in range(steps):
        out = fn(params, xs)
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--configs", nargs="*", default=None, help="b,t,i,h ...")
    args = parser.parse_args(argv)
    configs = CONFIGS
    if args.configs:
        configs = [tuple(int(v) for v in c.split(",")) for c in args.configs]
    for config in configs:
        xs = jnp.asarray(np.random.default_rng(0).standard_normal(config[:3]), jnp.float32)
        for pattern in ("last", "every"):
            programs = {
                "flax": flax_program(*config, pattern),
                "jaxrnn": jaxrnn_program(*config, pattern),
                "hoisted": jaxrnn_program(*config, pattern, jaxrnn.Strategy(fused=False)),
            }
            for fn, params in programs.values():
                seconds(fn, params, xs, 3)  # compile and warm up
            steps = max(3, int(0.2 / seconds(*programs["flax"], xs, 3)))
            times = {name: [] for name in programs}
            for _ in range(args.rounds):
                for name, (fn, params) in programs.items():
                    times[name].append(seconds(fn, params, xs, steps))
            cells = []
            for name in ("jaxrnn", "hoisted"):
                ratio = statistics.median(
                    f / p for f, p in zip(times["flax"], times[name], strict=True)
                )
                cells.append(
                    f"{name} {1000 * statistics.median(times[name]):8.2f} ms {ratio:5.2f}x"
                )
            flax_ms = 1000 * statistics.median(times["flax"])
            print(
                f"{config} {pattern:5s}  flax {flax_ms:8.2f} ms | " + " | ".join(cells), flush=True
            )


if __name__ == "__main__":
    main()
