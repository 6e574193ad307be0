"""Stock experiment: CSV errors, both formats, no look-ahead, and a smoke run."""

import dataclasses
import json
import os

import numpy as np
import pytest

from experiments.stock import data
from experiments.stock import main as stock_main
from experiments.stock.configs.default import Config
from experiments.stock.train import diebold_mariano
from experiments.stock.train import train_and_evaluate

HEADER = "Date,Open,High,Low,Close,Volume,Name"
GOOD = ["2020-01-02,10,11,9,10.5,100,X", "2020-01-03,10.5,12,10,11,120,X"]


def write(tmp_path, lines, name="prices.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], r"prices.csv: the file is empty"),
        ([HEADER], r"prices.csv: the header is there but there are no data rows"),
        (["Date,Open,High,Close", *GOOD], r"prices.csv, line 1: missing column\(s\) Low"),
        (
            [HEADER, GOOD[0], "2020-01-03,10.5,12,10,11,120"],
            r"prices.csv, line 3: expected 7 fields .* got 6",
        ),
        (
            [HEADER, GOOD[0], "2020-01-03,10.5,null,10,11,120,X"],
            r"prices.csv, line 3: High is 'null', expected a number",
        ),
        (
            [HEADER, GOOD[0], "03/01/2020,10.5,12,10,11,120,X"],
            r"prices.csv, line 3: Date '03/01/2020' is not a date in YYYY-MM-DD form",
        ),
        ([HEADER, GOOD[1], GOOD[0]], r"prices.csv, line 3: dates out of order"),
        ([HEADER, GOOD[0], GOOD[0]], r"prices.csv, line 3: duplicate date: 2020-01-02"),
        (
            [HEADER, GOOD[0], "2020-01-03,10.5,9,10,11,120,X"],
            r"prices.csv, line 3: High 9.0 is below Low 10.0",
        ),
        (
            [HEADER, GOOD[0], "2020-01-03,10.5,12,10,-11,120,X"],
            r"prices.csv, line 3: Close is -11.0, expected a positive finite number",
        ),
        ([HEADER, GOOD[0], "2020-01-03,10.5,12,10,nan,120,X"], r"prices.csv, line 3: Close is nan"),
    ],
)
def test_csv_errors_name_file_line_and_problem(tmp_path, lines, message):
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    with pytest.raises(data.CSVError, match=message):
        data.read_prices(path)


def test_both_shared_formats_are_read_completely(data_dir):
    aapl = data.read_prices(os.path.join(data_dir, "stock/AAPL_2006-01-01_to_2018-01-01.csv"))
    gspc = data.read_prices(os.path.join(data_dir, "stock/GSPC.csv"))
    assert len(aapl) == 3019 and len(gspc) == 7252  # every row of SOURCE.md's counts
    assert str(aapl.dates[0]) == "2006-01-03" and aapl.close[0] == 10.68
    assert str(gspc.dates[-1]) == "2018-10-10" and gspc.volume is not None


def test_yahoo_format_with_adj_close_and_crlf(tmp_path):
    path = tmp_path / "y.csv"
    path.write_bytes(
        b"Date,Open,High,Low,Close,Adj Close,Volume\r\n"
        b"2020-01-02,1,2,0.5,1.5,1.4,10\r\n2020-01-03,1.5,2,1,1.8,1.7,0\r\n"
    )
    prices = data.read_prices(path)
    assert prices.close.tolist() == [1.5, 1.8] and prices.volume.tolist() == [10, 0]


def synthetic_prices(n=400, seed=0):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
    open_ = close * np.exp(0.002 * rng.standard_normal(n))
    high = np.maximum(open_, close) * 1.01
    low = np.minimum(open_, close) * 0.99
    dates = np.datetime64("2010-01-01") + np.arange(n)
    return data.Prices("synthetic", dates, open_, high, low, close, rng.uniform(1, 2, n) * 1e6)


def test_normalisation_and_training_data_do_not_look_ahead():
    prices = synthetic_prices()
    base = data.make_dataset(prices, 10, 0.15, 0.15)
    # Change every price after the training span: training inputs and statistics stay put.
    first_val_day = np.searchsorted(prices.dates, base.val.dates[0])
    future = dataclasses.replace(
        prices,
        close=np.where(np.arange(len(prices)) >= first_val_day, prices.close * 3, prices.close),
        high=np.where(np.arange(len(prices)) >= first_val_day, prices.high * 3, prices.high),
    )
    changed = data.make_dataset(future, 10, 0.15, 0.15)
    np.testing.assert_array_equal(base.mean, changed.mean)
    np.testing.assert_array_equal(base.std, changed.std)
    assert base.target_std == changed.target_std
    np.testing.assert_array_equal(base.train.inputs, changed.train.inputs)
    np.testing.assert_array_equal(base.train.targets, changed.train.targets)
    assert not np.array_equal(base.test.next_close, changed.test.next_close)
    # Splits are chronological and disjoint.
    assert base.train.dates[-1] < base.val.dates[0] and base.val.dates[-1] < base.test.dates[0]


def test_window_targets_are_the_next_close():
    prices = synthetic_prices(100)
    ds = data.make_dataset(prices, 5, 0.2, 0.2)
    k = np.searchsorted(prices.dates, ds.test.dates[0])
    assert ds.test.last_close[0] == prices.close[k - 1] and ds.test.next_close[0] == prices.close[k]
    np.testing.assert_allclose(
        ds.to_return(ds.test.targets[:1]),
        [np.log(prices.close[k] / prices.close[k - 1])],
        rtol=1e-5,
    )


def test_diebold_mariano_sign_and_p_value():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(2000)
    better = diebold_mariano(0.5 * reference, reference)
    assert better["dm_stat"] < -10 and better["dm_p_value"] < 1e-6
    same = diebold_mariano(reference + 1e-3 * rng.standard_normal(2000), reference)
    assert same["dm_p_value"] > 0.01


def test_cli_reports_a_missing_file_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        stock_main.main(["--csv", str(tmp_path / "nope.csv"), "--workdir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "error: --csv" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_run_on_a_small_slice(tmp_path, data_dir):
    source = os.path.join(data_dir, "stock/GSPC.csv")
    lines = open(source).read().splitlines()[:400]
    small = write(tmp_path, lines, "small.csv")
    config = Config(csv=str(small), num_steps=40, hidden_size=8, cells=("lstm",))
    results = train_and_evaluate(config, str(tmp_path / "run"))
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["days"] == 399
    for name in ("persistence", "linear autoregression", "lstm many-to-one"):
        assert np.isfinite(results["test"][name]["rmse"])
    assert "beats_persistence" in results["test"]["lstm many-to-one"]
    assert (tmp_path / "run" / "test_predictions.png").exists()


def test_a_last_line_without_a_line_break_is_left_out_with_a_warning(tmp_path):
    # A file cut inside the last Volume ("...,120" of "...,1204") would train on the cut value.
    path = tmp_path / "cut.csv"
    path.write_text("\n".join([HEADER, *GOOD, "2020-01-06,11,12,10,11.5,12"]))
    with pytest.warns(UserWarning, match=r"cut.csv, line 4: the file does not end with a line"):
        prices = data.read_prices(path)
    assert len(prices) == 2 and prices.volume.tolist() == [100, 120]


def test_a_zero_volume_that_drops_the_volume_feature_says_so():
    prices = synthetic_prices(60)
    prices = dataclasses.replace(prices, volume=np.where(np.arange(60) == 7, 0.0, prices.volume))
    with pytest.warns(UserWarning, match=r"Volume is 0 on 1 day\(s\) .*'volume change' feature"):
        _, names = data.day_features(prices)
    assert "volume change" not in names
    assert "volume change" in data.day_features(synthetic_prices(60))[1]
