"""Data-parallel training of a small LSTM in one or several processes.

One process:                python examples/multiprocess_fit.py --workdir /tmp/mp_run
Three processes, one host:  python -m jaxrnn.launch -n 3 examples/multiprocess_fit.py \
                                --workdir /tmp/mp_run
On a SLURM cluster:         srun --ntasks 4 python examples/multiprocess_fit.py --workdir ...

Every process builds the same global batch for each step (a function of the step) and
passes its share to `fit`; the loss trajectory is that of one process within rounding.
Killing any process stops the others with a message naming it; running the same command
again resumes from the newest complete checkpoint. ``tests/test_multiprocess.py`` runs this
script.
"""

import argparse
import json
import os
import signal
import sys

from jaxrnn import distributed

if os.environ.get("JAX_COORDINATOR_ADDRESS") or int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    # Before any other use of JAX. A short heartbeat makes a lost process known quickly.
    distributed.initialize(heartbeat_timeout_seconds=10)

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn import train

CELL = jaxrnn.lstm(16)


def loss_fn(params, batch, key):
    xs, ys = batch
    last = jaxrnn.many_to_one(CELL, params["rnn"], xs)
    if key is not None:
        last = jaxrnn.dropout_apply(key, last, 0.1)
    mse = jnp.mean((last @ params["head"] - ys) ** 2)
    return mse, {"mse": mse}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument(
        "--batch-size", type=int, default=24, help="global; a multiple of the device count"
    )
    parser.add_argument("--out", help="JSON file for the history and final params (process 0)")
    parser.add_argument("--kill-process", type=int, help="simulate a lost host: this process")
    parser.add_argument("--kill-at", type=int, help="... kills itself after this step")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    xs = rng.standard_normal((144, 8, 2)).astype(np.float32)
    ys = xs.sum(axis=(1, 2))[:, None].astype(np.float32)
    batches = train.EpochBatches((xs[:96], ys[:96]), args.batch_size, seed=3)
    val = train.eval_batches((xs[96:], ys[96:]), args.batch_size)
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"rnn": CELL.init(k1, 2), "head": 0.1 * jax.random.normal(k2, (16, 1))}

    def die(step, state, metrics):
        if step == args.kill_at and jax.process_index() == args.kill_process:
            os.kill(os.getpid(), signal.SIGKILL)

    try:
        result = train.fit(
            loss_fn,
            params,
            lambda step: distributed.process_share(batches(step)),  # this process's rows
            num_steps=args.steps,
            val_data=[distributed.process_share(batch) for batch in val],
            evaluation=train.Evaluation(every=args.checkpoint_every),
            workdir=args.workdir,
            optimizer=train.default_optimizer(1e-2),
            seed=1,
            progress=False,
            callbacks=(die,),
            config={"batch_size": args.batch_size},
            data_parallel=True,
        )
    except (train.LostProcessError, train.ResumeMismatchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        os._exit(1)  # skip JAX's shutdown barrier, which would wait for the lost process
    if jax.process_index() == 0 and args.out:
        leaves = [np.asarray(leaf).ravel().tolist() for leaf in jax.tree.leaves(result.params)]
        with open(args.out, "w") as f:
            json.dump(
                {"processes": jax.process_count(), "history": result.history, "params": leaves}, f
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
