"""A small, fast training problem shared by the harness tests, runnable as a script.

``python tests/toy_problem.py WORKDIR NUM_STEPS [KILL_AT SIGNAL [WHEN]]`` trains it with a
workdir and, if asked, kills its own process with SIGKILL or SIGINT after step KILL_AT (to
test resuming); WHEN ``in-save`` kills it inside the checkpoint save of step KILL_AT, after
orbax has written the arrays and before jaxrnn's record of them. WHEN ``wait`` instead
writes ``WORKDIR.held`` at step KILL_AT and waits (at most 1800 s) for ``WORKDIR.go`` to
appear, so that a test can act while the run holds its workdir.

``python tests/toy_problem.py WORKDIR NUM_STEPS report`` prints ``step N`` after every step
(and waits 20 ms), so that a parent can send a signal at a step of its choice.
"""

import os
import signal
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxrnn
from jaxrnn import train
from jaxrnn.train import checkpoints

CELL = jaxrnn.lstm(8)


def make_data(seed=0, n=96, t=6):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((n, t, 2)).astype(np.float32)
    ys = xs.sum(axis=(1, 2))[:, None].astype(np.float32)
    return xs, ys


def init_params(seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"rnn": CELL.init(k1, 2), "head": 0.1 * jax.random.normal(k2, (8, 1))}


def loss_fn(params, batch, key):
    xs, ys = batch
    last = jaxrnn.many_to_one(CELL, params["rnn"], xs)
    if key is not None:  # dropout on the features: exercises the per-step key
        last = jaxrnn.dropout_apply(key, last, 0.1)
    mse = jnp.mean((last @ params["head"] - ys) ** 2)
    return mse, {"mse": mse}


def run(workdir, num_steps, callbacks=(), **kwargs):
    xs, ys = make_data()
    kwargs.setdefault("evaluation", train.Evaluation(every=5))
    return train.fit(
        loss_fn,
        init_params(),
        train.EpochBatches((xs[:64], ys[:64]), batch_size=16, seed=3),
        num_steps=num_steps,
        val_data=train.eval_batches((xs[64:], ys[64:]), 16),
        workdir=workdir,
        seed=1,
        optimizer=train.default_optimizer(1e-2),
        progress=False,
        callbacks=callbacks,
        config={"toy": 1},
        **kwargs,
    )


if __name__ == "__main__":
    workdir, num_steps = sys.argv[1], int(sys.argv[2])
    callbacks = ()
    if sys.argv[3:] == ["report"]:

        def report(step, state, metrics):
            print(f"step {step}", flush=True)
            time.sleep(0.02)

        callbacks = (report,)
    elif len(sys.argv) > 3:
        kill_at, sig = int(sys.argv[3]), getattr(signal, sys.argv[4])
        when = sys.argv[5] if len(sys.argv) > 5 else "after-step"
        # A parent that ignores Ctrl-C (pytest-xdist workers do) passes that on to its
        # children; restore Python's default so that SIGINT raises KeyboardInterrupt as in a
        # terminal.
        signal.signal(signal.SIGINT, signal.default_int_handler)

        def kill(step, state, metrics):
            if step == kill_at and when == "after-step":
                os.kill(os.getpid(), sig)
            if step == kill_at and when == "wait":
                open(workdir + ".held", "w").close()
                deadline = time.monotonic() + 1800
                while not os.path.exists(workdir + ".go") and time.monotonic() < deadline:
                    time.sleep(0.05)

        if when == "in-save":
            write_record = checkpoints._write_record

            def killed_before_the_record(folder, record):
                if record["step"] == kill_at:
                    os.kill(os.getpid(), sig)
                write_record(folder, record)

            checkpoints._write_record = killed_before_the_record
        callbacks = (kill,)
    run(workdir, num_steps, callbacks)
