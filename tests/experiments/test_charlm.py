"""Character-level LM: sampling invariances, prompt errors, exact resume, smoke run, every
model (LSTM, sLSTM, mLSTM, Mamba, Transformer) and their side-by-side comparison."""

import json

import jax
import numpy as np
import pytest

from experiments.charlm import compare
from experiments.charlm import main as charlm_main
from experiments.charlm import model
from experiments.charlm import sample as sample_cli
from experiments.charlm.configs.default import Config
from experiments.charlm.inference import encode_prompt
from experiments.charlm.inference import load
from experiments.charlm.inference import sampler
from experiments.charlm.train import optimizer as charlm_optimizer
from experiments.charlm.train import settings
from experiments.charlm.train import train_and_evaluate
from experiments.reporting import run_settings
from experiments.reporting import save_config
from experiments.validation import ConfigError
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
# The other models at tiny sizes (--d-model, --num-blocks, --num-heads).
TINY_SIZES = {"d_model": 16, "num_blocks": 2, "num_heads": 2}


def tiny(name: str, **fields) -> Config:
    sizes = {} if name == "lstm" else TINY_SIZES
    return Config(**{**TINY.__dict__, "model": name, **sizes, **fields})


CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
) * 40


@pytest.fixture()
def text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return str(path)


def tiny_params(config=TINY):
    vocab = text.Vocabulary.build([list(CORPUS)])
    return vocab, model.make(config).init(jax.random.key(0), len(vocab))


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


@pytest.mark.parametrize("name", model.MODELS)
def test_sampling_continues_the_prompt_state(name):
    # The sampler's first token is predicted from the whole prompt: equal to a full forward.
    config = tiny(name)
    vocab, params = tiny_params(config)
    prompt = encode_prompt(vocab, "Before we")
    first = np.asarray(sampler(config, 1, 0.0)(params, prompt, jax.random.key(0)))[0, 0]
    carry = model.make(config).initial_carry(params, 1)
    _, logits = model.make(config).apply(params, prompt, carry)
    specials = len(text.SPECIALS)  # reserved ids are never generated
    assert first == specials + int(np.argmax(logits[0, -1, specials:]))


@pytest.mark.parametrize("name", model.MODELS)
def test_every_model_generates_a_character_at_a_time_as_it_reads(name):
    # Given a text read whole, When each model reads it through its generation state one
    # character at a time (RNN carry, Transformer KV cache), Then the logits agree.
    config = tiny(name)
    vocab, params = tiny_params(config)
    m = model.make(config)
    ids = encode_prompt(vocab, "Speak, speak")  # 12 characters: the Transformer's window
    _, full = m.apply(params, ids, m.initial_carry(params, 1))
    state = m.read_prompt(params, ids[:, :4], ids.shape[1] - 4)
    _, first = m.apply(params, ids[:, :5], m.initial_carry(params, 1))
    step = m.step_fn(params)
    stepped = []
    for t in range(4, ids.shape[1]):
        state, logits = step(state, ids[:, t])
        stepped.append(logits)
    specials = len(text.SPECIALS)
    got = np.stack(stepped, axis=1)[..., specials:]
    np.testing.assert_allclose(got, full[:, 4:, specials:], atol=1e-5)
    np.testing.assert_allclose(first[:, 4, specials:], got[:, 0], atol=1e-5)


def test_each_default_model_has_about_the_lstm_parameter_count():
    counts = {}
    for name in model.MODELS:
        m = model.make(Config(model=name))
        shapes = jax.eval_shape(lambda key, m=m: m.init(key, 69), jax.random.key(0))
        counts[name] = model.count_params(shapes)
    for count in counts.values():
        assert abs(count - counts["lstm"]) / counts["lstm"] < 0.15, counts


def test_lstm_settings_are_those_of_runs_made_before_the_other_models():
    # A run of the LSTM saved before --model existed resumes: its settings hold no new field.
    assert settings(Config()) == {
        k: v
        for k, v in run_settings(Config()).items()
        if k
        not in (
            "model",
            "d_model",
            "num_blocks",
            "num_heads",
            "state_size",
            "positions",
            "time_budget",
        )
    }
    assert settings(Config(model="mamba"))["model"] == "mamba"
    assert "hidden_size" not in settings(Config(model="mamba"))


def test_a_bad_model_is_one_error_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        charlm_main.main(["--model", "gpt", "--workdir", str(tmp_path)])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --model must be one of lstm, slstm, mlstm, mamba, transformer; got 'gpt'"
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"model": "transformer", "d_model": 18, "num_heads": 4}, "--num-heads 4 must divide"),
        ({"model": "transformer", "d_model": 12, "num_heads": 4}, "even width per head"),
        ({"positions": "none"}, "--positions must be one of rotary, learned"),
        ({"time_budget": -1.0}, "--time-budget must be at least 0"),
    ],
)
def test_bad_model_sizes_are_named(fields, message):
    with pytest.raises(ConfigError, match=message):
        Config(**fields).check()


def test_resuming_as_another_model_is_refused(tmp_path, text_file):
    save_config(tmp_path, tiny("lstm"), "charlm")
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds a --model lstm run, which cannot resume as "
                       "--model transformer; pass --model lstm"):  # fmt: skip
        train_and_evaluate(tiny("transformer", text=text_file), str(tmp_path))


def test_learned_positions_refuse_a_sample_longer_than_the_window(tmp_path, text_file):
    config = tiny("transformer", text=text_file, positions="learned")
    with pytest.raises(ConfigError, match="--positions learned reads at most --chunk-length 12"):
        train_and_evaluate(config, str(tmp_path))


def test_prompt_with_unknown_characters_is_a_clear_error():
    vocab, _ = tiny_params()
    with pytest.raises(ValueError, match=r"characters the model never saw in training: 'Zé'"):
        encode_prompt(vocab, "Zé Speak")
    with pytest.raises(ValueError, match="the prompt is empty"):
        encode_prompt(vocab, "")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_resume_continues_stream_position_and_hidden_state_exactly(tmp_path, text_file, name):
    config = tiny(name, text=text_file)
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
    like = train.init_state(tiny_params(config)[1], charlm_optimizer(config))
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


@pytest.mark.slow
def test_time_budget_stops_the_run_and_it_still_reports(tmp_path, text_file):
    config = tiny("lstm", text=text_file, time_budget=1e-6, num_steps=1000)
    results = train_and_evaluate(config, str(tmp_path))
    assert results["steps"] == 1 and results["best_step"] == 1
    assert train.Checkpointer(tmp_path / "checkpoints").latest_step() == 1


@pytest.mark.slow
def test_compare_with_a_tiny_budget_writes_the_table(tmp_path, text_file):
    base = Config(**{**TINY.__dict__, "text": text_file, "num_layers": 1})
    sizes = {name: TINY_SIZES for name in model.MODELS if name != "lstm"}
    rows = compare.compare(["lstm", "mamba", "transformer"], 0.05, str(tmp_path), base, sizes)
    stored = json.loads((tmp_path / "compare.json").read_text())
    assert [row["model"] for row in stored["rows"]] == ["lstm", "mamba", "transformer"]
    assert stored["rows"] == json.loads(json.dumps(rows))
    for row in rows:
        assert 0 < row["val_nats_per_char"] < 10 and row["steps"] >= 1
        assert row["train_chars_per_second"] > 0 and row["sampling_chars_per_second_batch_1"] > 0
    lstm, mamba, trans = rows
    # An RNN's state is its carry at every position: (1, 16) h and c, float32.
    assert lstm["state_bytes_at_128"] == lstm["state_bytes_at_2048"] == 2 * 16 * 4
    assert mamba["state_bytes_at_128"] == mamba["state_bytes_at_2048"]
    # The Transformer's cache holds keys and values of every position: 2 blocks x 2 x n x 16.
    for n in (128, 512, 2048):
        assert trans[f"state_bytes_at_{n}"] == 2 * 2 * n * 16 * 4 + 4
    table = (tmp_path / "compare.md").read_text()
    assert "| transformer |" in table and "state bytes at 2048" in table


def test_compare_refuses_unknown_models(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        compare.main(["--minutes", "0.1", "--models", "lstm,gpt", "--workdir", str(tmp_path)])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: --models: 'gpt' is not one of lstm, slstm, mlstm, mamba, transformer"
    )
