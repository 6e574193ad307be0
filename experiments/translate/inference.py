"""Using a trained translation model: load a run, translate, score, look at the attention.

The command line (`python -m experiments.translate.translate`), the notebook and the training
run's own evaluation all go through these functions.
"""

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sacrebleu

from experiments.reporting import load_config
from experiments.translate import data
from experiments.translate import model
from experiments.translate import units
from experiments.translate.configs.default import Config
from jaxrnn import decode
from jaxrnn import text
from jaxrnn import train


def load(workdir: str, which: str = "best"):
    """``(config, params, source_vocab, target_vocab)`` of a trained run; the config's
    length penalty is the one chosen on the validation set when the run was evaluated."""
    config = load_config(workdir, Config, "translate")
    words = os.path.join(workdir, "source_vocab.json")
    if os.path.exists(words) and not os.path.exists(os.path.join(workdir, "source.spm")):
        config = dataclasses.replace(config, units="word")  # a run from before subwords
    chosen = _chosen_length_penalty(workdir)
    if chosen is not None:  # the alpha that training picked on the validation set
        config = dataclasses.replace(config, length_penalty=chosen)
    source = units.load(config.units, workdir, "source", "tr")
    target = units.load(config.units, workdir, "target", "en")
    like = model.make(config).init(jax.random.key(0), len(source), len(target))
    params = train.Checkpointer(os.path.join(workdir, "checkpoints")).restore_params(like, which)
    return config, params, source, target


def _chosen_length_penalty(workdir: str) -> float | None:
    try:
        with open(os.path.join(workdir, "results.json"), encoding="utf-8") as f:
            return float(json.load(f)["length_penalty"]["chosen"])
    except (OSError, ValueError, KeyError, TypeError):  # not evaluated yet, or an older run
        return None


@functools.cache
def decoders(config: Config):
    """Jitted greedy and beam decoders for this config (built once per config)."""
    m = model.make(config)

    @jax.jit
    def greedy(params, ids, lengths):
        state, memory = m.encode(params, ids, lengths)
        bos = jnp.full((ids.shape[0],), text.Vocabulary.bos_id, jnp.int32)
        _, tokens = decode.generate(
            m.step_fn(params), (state, memory), bos, length=config.max_decode_tokens
        )
        return tokens

    @functools.partial(jax.jit, static_argnames="beam_size")
    def beam(params, ids, lengths, beam_size):
        state, memory = m.encode(params, ids, lengths)
        repeat = lambda x: jnp.repeat(x, beam_size, axis=0)
        carry = (repeat(state), jax.tree.map(repeat, memory))
        bos = jnp.full((ids.shape[0],), text.Vocabulary.bos_id, jnp.int32)
        tokens, _, _ = decode.beam_search(
            m.step_fn(params),
            carry,
            bos,
            beam_size=beam_size,
            max_length=config.max_decode_tokens,
            eos_id=text.Vocabulary.eos_id,
            length_penalty=config.length_penalty,
        )
        return tokens[:, 0]

    return greedy, beam


def translate(
    config: Config,
    params,
    source_vocab,
    target_vocab,
    sentences: list[str],
    beam_size: int = 1,
    batch_size: int = 128,
) -> list[str]:
    """Translates Turkish sentences to English (greedy when ``beam_size == 1``)."""
    if beam_size < 1:
        raise ValueError(f"beam size must be at least 1, got {beam_size}")
    sources = data.encode_sources(source_vocab, sentences)
    out = [""] * len(sentences)
    nonempty = [n for n, s in enumerate(sources) if len(s)]
    if not nonempty:
        return out
    batches = text.BucketedBatches(
        [sources[n] for n in nonempty],
        batch_size=batch_size,
        buckets=data.buckets([len(sources[n]) for n in nonempty]),
        shuffle=False,
    )
    greedy, beam = decoders(config)
    for batch in batches.epoch(0):
        if beam_size == 1:
            tokens = greedy(params, batch["ids"], batch["lengths"])
        else:
            tokens = beam(params, batch["ids"], batch["lengths"], beam_size)
        for row, index in enumerate(batch["index"]):
            if index >= 0:
                out[nonempty[index]] = target_vocab.decode(tokens[row])
    return out


def score(hypotheses: list[str], references: list[str]) -> dict[str, Any]:
    """Corpus BLEU and chrF with sacrebleu (detokenised text), with their signatures."""
    bleu, chrf = sacrebleu.metrics.BLEU(), sacrebleu.metrics.CHRF()
    b, c = bleu.corpus_score(hypotheses, [references]), chrf.corpus_score(hypotheses, [references])
    return {
        "bleu": b.score,
        "chrf": c.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def attention_map(
    config: Config, params, source_vocab, target_vocab, sentence: str, translation: str
):
    """Attention weights ``(target tokens, source tokens)`` of the model on its own output."""
    source = source_vocab.encode(sentence)
    target = target_vocab.encode(translation, eos=True)
    inputs = np.concatenate([[text.Vocabulary.bos_id], target[:-1]])[None]
    _, weights = model.make(config).teacher_forced(
        params, jnp.asarray(source[None]), jnp.asarray([len(source)]), jnp.asarray(inputs)
    )
    return (
        np.asarray(weights[0]),
        source_vocab.pieces(source),
        target_vocab.pieces(target),
    )
