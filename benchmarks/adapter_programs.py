"""Whether `jaxrnn.nnx` costs anything once jitted: the operation counts of the compiled
training step and inference of the rnn_speed.py "jaxrnn" and "jaxrnn.nnx" rows, side by side.

Timings of two programs this close differ by the machine's noise (a few percent here); equal
operation counts show that XLA runs the same kernels for both.

    python benchmarks/adapter_programs.py
"""

import jax
import jax.numpy as jnp
import rnn_speed
from common import op_counts


def programs(maker, cell_name, config) -> dict:
    b, t, i, h = config
    params, predict = maker(cell_name, b, t, i, h)
    xs, targets = jnp.zeros((b, t, i)), jnp.zeros((b, 1))
    loss = lambda p: jnp.mean((predict(p, xs) - targets) ** 2)
    return {
        task: op_counts(jax.jit(fn).lower(params).compile().as_text())
        for task, fn in (("train", jax.grad(loss)), ("infer", lambda p: predict(p, xs)))
    }


def main() -> None:
    for cell_name in ("lstm", "gru"):
        for config in rnn_speed.CONFIGS:
            direct = programs(rnn_speed.make_jaxrnn, cell_name, config)
            adapter = programs(rnn_speed.make_jaxrnn_nnx, cell_name, config)
            for task in ("train", "infer"):
                differ = {
                    kind: (direct[task][kind], adapter[task][kind])
                    for kind in direct[task] | adapter[task]
                    if direct[task][kind] != adapter[task][kind]
                }
                verdict = "the same operations" if not differ else f"differ: {differ}"
                print(f"{cell_name} {config} {task}: {verdict}")


if __name__ == "__main__":
    main()
