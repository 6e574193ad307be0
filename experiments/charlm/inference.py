"""Using a trained character model: load a run, encode a prompt, sample text.

The command line (`python -m experiments.charlm.sample`), the notebook and the training run's
own samples all go through these functions.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.charlm import model
from experiments.charlm.configs.default import Config
from experiments.reporting import load_config
from experiments.reporting import write_json
from jaxrnn import decode
from jaxrnn import export
from jaxrnn import text
from jaxrnn import train


def load(workdir: str, which: str = "best"):
    """``(config, vocab, params)`` of a trained run."""
    config = load_config(workdir, Config, "charlm")
    vocab = text.Vocabulary.load(os.path.join(workdir, "vocab.json"))
    like = model.make(config).init(jax.random.key(0), len(vocab))
    params = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(like, which)
    return config, vocab, params


def sampler(config: Config, length: int, temperature: float, top_k: int | None = None):
    """``sample(params, prompt_ids (b, p), key) -> ids (b, length)``, one jitted function: the
    prompt is read (RNNs: with `jaxrnn.unroll`; the Transformer: into its key/value cache),
    then `jaxrnn.decode.generate` samples."""

    m = model.make(config)

    @jax.jit
    def sample(params, prompt_ids, key):
        # All but the last prompt character build the state; generation reads the last.
        state = m.read_prompt(params, prompt_ids[:, :-1], length)
        _, tokens = decode.generate(
            m.step_fn(params),
            state,
            prompt_ids[:, -1],
            length=length,
            key=key,
            temperature=temperature,
            top_k=top_k,
            unroll=2,  # two steps per loop iteration: less loop overhead per character
        )
        return tokens

    return sample


def encode_prompt(vocab, prompt: str) -> np.ndarray:
    """The prompt's character ids ``(1, p)``; characters the model never saw are an error."""
    if not prompt:
        raise ValueError("the prompt is empty; give at least one character")
    unknown = sorted({c for c in prompt if c not in vocab})
    if unknown:
        raise ValueError(
            f"the prompt has characters the model never saw in training: "
            f"{''.join(unknown)!r}; use only characters of the training text"
        )
    return vocab.encode(list(prompt))[None]


def sampling_speed(config: Config, params, prompt: np.ndarray, length: int = 5000) -> float:
    """Characters per second of `sampler` at batch 1, timed after compilation (median of 3)."""
    sample = sampler(config, length, 1.0)
    sample(params, prompt, jax.random.key(0)).block_until_ready()
    times = []
    for n in range(3):
        t = time.perf_counter()
        sample(params, prompt, jax.random.key(n + 1)).block_until_ready()
        times.append(time.perf_counter() - t)
    return length / float(np.median(times))


def export_step(workdir: str, path: str, which: str = "best") -> dict:
    """Writes one step of a run's sampler, carry in and carry out, as an artifact for
    serving (streaming generation), and a description.

    ``path`` ending in ``.onnx`` gives an ONNX model (jax2onnx), any other name a
    `jax.export` artifact. Either maps ``tokens`` ``(b,)`` int32 (character ids of
    ``<path>.json``'s vocabulary) and the carry, one ``(b, h)`` float32 array per entry of
    the description's ``carry`` (zeros before the first character), to the next character's
    ``logits`` ``(b, v)`` and the new carry, for any ``b``. Feeding a text one character at a
    time gives the same logits as the model reading it whole.

    Returns:
      The description written to ``<path>.json``.
    """
    config, vocab, params = load(workdir, which)
    if config.model != "lstm":
        raise ValueError(
            f"--export writes the step of --model lstm runs; {workdir} holds a --model "
            f"{config.model} run"
        )
    m = model.make(config)
    step = m.step_fn(params)
    leaves, treedef = jax.tree.flatten(m.initial_carry(params, 1))
    names = [
        f"layer{n}.{part}"
        for n, carry in enumerate(m.initial_carry(params, 1))
        for part in (carry._fields if hasattr(carry, "_fields") else ("h",))
    ]

    def serve(tokens, *carry):
        carry, logits = step(jax.tree.unflatten(treedef, carry), tokens)
        return (logits, *jax.tree.leaves(carry))

    args = export.arguments(
        ("b", jnp.int32), *[(f"b, {leaf.shape[-1]}", leaf.dtype) for leaf in leaves]
    )
    written = export.save_by_suffix(
        serve,
        args,
        path,
        input_names=["tokens", *names],
        output_names=["logits", *(f"next_{name}" for name in names)],
    )
    description = {
        "format": written,
        "inputs": {
            "tokens": "(b,) int32 character ids",
            **{
                name: f"(b, {leaf.shape[-1]}) float32"
                for name, leaf in zip(names, leaves, strict=True)
            },
        },
        "outputs": {
            "logits": f"(b, {len(vocab)}) float32 scores of the next character (-inf for the "
            "reserved ids)",
            **{f"next_{name}": "the carry after this character" for name in names},
        },
        "carry": names,
        "initial_carry": "zeros",
        "vocabulary": list(vocab.tokens),
    }
    write_json(path + ".json", description)
    return description
