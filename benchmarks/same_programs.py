"""Whether a refactor changed what XLA runs: the operation counts of the compiled LSTM and GRU
training and inference steps of one jaxrnn checkout, printed one program per line.

Run it for two checkouts and compare; equal counts mean the same kernels, so the benchmark
ratios cannot have moved (timings on a shared machine cannot show that as precisely):

    python benchmarks/same_programs.py /path/to/old/checkout > old.txt
    python benchmarks/same_programs.py . > new.txt
    diff old.txt new.txt
"""

import os
import sys

import jax
import jax.numpy as jnp
from common import op_counts


def _programs(jaxrnn, cell, hidden: int) -> dict:
    params = {"rnn": cell.init(jax.random.key(0), 32), "w": jnp.zeros((hidden, 1))}
    xs, targets = jnp.zeros((64, 100, 32)), jnp.zeros((64, 1))

    def last_only(p, lengths=None):
        last = jaxrnn.many_to_one(cell, p["rnn"], xs, seq_lengths=lengths)
        return jnp.mean((last @ p["w"] - targets) ** 2)

    def every_output(p):
        _, ys = jaxrnn.unroll(cell, p["rnn"], xs)
        return jnp.mean((ys[:, -1] @ p["w"] - targets) ** 2)

    programs = {
        "train": jax.grad(last_only),
        "infer": last_only,
        "train-every-output": jax.grad(every_output),
        "train-lengths": jax.grad(lambda p: last_only(p, jnp.full((64,), 90))),
    }
    return {label: jax.jit(fn).lower(params).compile().as_text() for label, fn in programs.items()}


def main(checkout: str) -> None:
    sys.path.insert(0, checkout)
    import jaxrnn

    if not os.path.abspath(jaxrnn.__file__).startswith(os.path.abspath(checkout)):
        raise SystemExit(f"error: jaxrnn came from {jaxrnn.__file__}, not from {checkout}")
    for name, hidden in (("lstm", 64), ("lstm", 128), ("lstm", 512), ("gru", 128), ("gru", 512)):
        for label, text in _programs(jaxrnn, getattr(jaxrnn, name)(hidden), hidden).items():
            kinds = op_counts(text)
            print(f"{name}{hidden} {label} {sorted(kinds.items())}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
