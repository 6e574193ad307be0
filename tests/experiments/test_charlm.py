"""Character-level LM: sampling invariances, prompt errors, exact resume, smoke run."""

import json

import jax
import numpy as np
import pytest

from experiments.charlm import model
from experiments.charlm import sample as sample_cli
from experiments.charlm.configs.default import Config
from experiments.charlm.inference import encode_prompt
from experiments.charlm.inference import load
from experiments.charlm.inference import sampler
from experiments.charlm.train import optimizer as charlm_optimizer
from experiments.charlm.train import train_and_evaluate
from jaxrnn import text
from jaxrnn import train
from tests.serving import run_without_jaxrnn

TINY = Config(
    hidden_size=16,
    embed_size=8,
    num_layers=2,
    batch_size=4,
    chunk_length=12,
    num_steps=12,
    eval_every=6,
    sample_length=40,
    sample_prompt="All:",
)
CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
) * 40


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return str(path)


def tiny_params():
    vocab = text.Vocabulary.build([list(CORPUS)])
    return vocab, model.make(TINY).init(jax.random.key(0), len(vocab))


def test_temperature_to_zero_equals_greedy_and_seeds_reproduce():
    vocab, params = tiny_params()
    prompt = encode_prompt(vocab, "Speak")
    greedy = sampler(TINY, 30, 0.0)(params, prompt, jax.random.key(0))
    cold = sampler(TINY, 30, 1e-5)(params, prompt, jax.random.key(1))
    np.testing.assert_array_equal(greedy, cold)
    hot = sampler(TINY, 30, 1.0)
    np.testing.assert_array_equal(
        hot(params, prompt, jax.random.key(5)), hot(params, prompt, jax.random.key(5))
    )
    assert not np.array_equal(
        hot(params, prompt, jax.random.key(5)), hot(params, prompt, jax.random.key(6))
    )


def test_sampling_continues_the_prompt_state():
    # The sampler's first token is predicted from the whole prompt: equal to a full forward.
    vocab, params = tiny_params()
    prompt = encode_prompt(vocab, "Before we")
    first = np.asarray(sampler(TINY, 1, 0.0)(params, prompt, jax.random.key(0)))[0, 0]
    carry = model.make(TINY).initial_carry(params, 1)
    _, logits = model.make(TINY).apply(params, prompt, carry)
    specials = len(text.SPECIALS)  # reserved ids are never generated
    assert first == specials + int(np.argmax(logits[0, -1, specials:]))


def test_prompt_with_unknown_characters_is_a_clear_error():
    vocab, _ = tiny_params()
    with pytest.raises(ValueError, match=r"characters the model never saw in training: 'Zé'"):
        encode_prompt(vocab, "Zé Speak")
    with pytest.raises(ValueError, match="the prompt is empty"):
        encode_prompt(vocab, "")


@pytest.mark.slow
def test_resume_continues_stream_position_and_hidden_state_exactly(tmp_path, text_file):
    config = Config(**{**TINY.__dict__, "text": text_file})
    full = tmp_path / "full"
    train_and_evaluate(config, str(full))

    def interrupt(step, state, metrics):
        if step == 7:
            raise KeyboardInterrupt

    part = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        train_and_evaluate(config, str(part), callbacks=(interrupt,))
    assert train.Checkpointer(part / "checkpoints").latest_step() == 7
    train_and_evaluate(config, str(part))
    like = train.init_state(tiny_params()[1], charlm_optimizer(config))
    ckpt_full = train.Checkpointer(full / "checkpoints")
    ckpt_part = train.Checkpointer(part / "checkpoints")
    for step in (12,):
        a, _ = ckpt_full.restore(
            like._replace(carry=model.make(config).initial_carry(like.params, 4)), step
        )
        b, _ = ckpt_part.restore(
            like._replace(carry=model.make(config).initial_carry(like.params, 4)), step
        )
        for x, y in zip(
            jax.tree.leaves((a.params, a.carry, a.step)),
            jax.tree.leaves((b.params, b.carry, b.step)),
            strict=True,
        ):
            np.testing.assert_array_equal(x, y)
    metrics = lambda d: [
        {k: v for k, v in r.items() if k != "wall_time"} for r in train.read_metrics(d)
    ]
    assert metrics(full) == metrics(part)


@pytest.mark.slow
def test_smoke_run_and_sample_cli(tmp_path, text_file, capsys):
    config = Config(**{**TINY.__dict__, "text": text_file})
    results = train_and_evaluate(config, str(tmp_path))
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["best_val_bits_per_char"] == pytest.approx(
        stored["best_val_nats_per_char"] / np.log(2)
    )
    assert results["sample"].startswith("All:") and len(results["sample"]) == 44
    assert (tmp_path / "learning_curve.png").exists()
    capsys.readouterr()
    sample_cli.main(
        ["--workdir", str(tmp_path), "--prompt", "Speak", "--length", "25", "--temperature", "0"]
    )
    out = capsys.readouterr().out
    assert out.startswith("Speak") and len(out.rstrip("\n")) >= 25

    # One sampler step exported, then fed "Speak" a character at a time by a process that
    # imports neither jaxrnn nor experiments: the logits of reading it whole.
    sample_cli.main(["--workdir", str(tmp_path), "--export", str(tmp_path / "step.jax")])
    config, vocab, params = load(str(tmp_path))
    m = model.make(config)
    prompt = encode_prompt(vocab, "Speak")
    _, logits = m.apply(params, prompt, m.initial_carry(params, 1))
    # The step never proposes the reserved ids (<pad>, <unk>, ...): their logits are -inf.
    expected = logits[:, -1].at[:, : len(text.SPECIALS)].set(-np.inf)
    np.save(tmp_path / "expected.npy", np.asarray(expected))
    run_without_jaxrnn(
        """
        import json, jax, numpy as np
        description = json.load(open("step.jax.json"))
        ids = {c: n for n, c in enumerate(description["vocabulary"])}
        step = jax.export.deserialize(bytearray(open("step.jax", "rb").read()))
        carry = [np.zeros((1, s.shape[-1]), s.dtype) for s in step.in_avals[1:]]
        assert len(carry) == len(description["carry"])
        for char in "Speak":
            logits, *carry = step.call(np.array([ids[char]], np.int32), *carry)
        np.testing.assert_allclose(logits, np.load("expected.npy"), atol=1e-5)
        """,
        cwd=tmp_path,
    )
