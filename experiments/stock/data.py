"""Daily price CSVs, leak-free features and chronological splits for next-day close prediction.

Two formats are read (see ``../shared/data/stock/SOURCE.md``):
``Date,Open,High,Low,Close,Volume,Name`` and Yahoo's ``Date,Open,High,Low,Close,Adj Close,Volume``.
Any CSV with a header naming at least Date, Open, High, Low and Close works. Problems are
reported with the file, the line and what is wrong; nothing is skipped silently.
"""

import dataclasses
import datetime
import math
import os
import warnings

import numpy as np

from experiments.datasets import DataError

REQUIRED = ("Date", "Open", "High", "Low", "Close")
MIN_TARGETS = 30  # fewest days to predict, over the three splits
OPTIONAL = ("Adj Close", "Volume", "Name")


class CSVError(DataError):
    """A problem in a price file, with its file name and line number in the message."""


@dataclasses.dataclass(frozen=True)
class Prices:
    """One instrument's daily prices, sorted by date."""

    path: str
    dates: np.ndarray  # (n,) datetime64[D]
    open: np.ndarray  # (n,) float64
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None  # (n,) float64, or None when the file has no Volume column

    def __len__(self) -> int:
        return len(self.dates)


def read_prices(path: str | os.PathLike) -> Prices:
    """Reads and checks a daily OHLC(V) CSV.

    A last line without a line break after it may have been cut in the middle of a number,
    which would still parse: it is left out with a warning naming the file and line.

    Checks: a header with Date, Open, High, Low, Close; every row with as many fields as the
    header; ISO dates (YYYY-MM-DD), strictly increasing (no duplicates, sorted); prices that
    are finite positive numbers with High >= Low; volumes that are finite and >= 0.

    Args:
      path: the CSV file.

    Returns:
      `Prices`.

    Raises:
      CSVError: naming the file, the line and the problem.

    Example:
      >>> from experiments.stock.data import read_prices
      >>> import tempfile, os
      >>> path = os.path.join(tempfile.mkdtemp(), "x.csv")
      >>> _ = open(path, "w").write("Date,Open,High,Low,Close\\n2020-01-02,1,2,0.5,1.5\\n")
      >>> read_prices(path).close.tolist()
      [1.5]
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CSVError(f"{path}: not UTF-8 text ({error})") from None
    lines = text.split("\n")
    if not text.strip():
        raise CSVError(f"{path}: the file is empty; expected a header line and daily rows")
    if len(lines) > 2 and lines[-1].strip():
        # No line break after the last line: a download or copy cut short ends this way, in
        # the middle of a number that would still parse ("...,374.950012,206").
        warnings.warn(
            f"{path}, line {len(lines)}: the file does not end with a line break, so its last "
            f"line may be cut short ({lines[-1].strip()[-40:]!r}); left it out. End the file "
            "with a line break to keep it.",
            stacklevel=2,
        )
        lines = lines[:-1]
    header = [name.strip() for name in lines[0].rstrip("\r").split(",")]
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise CSVError(
            f"{path}, line 1: missing column(s) {', '.join(missing)}; the header is "
            f"{','.join(header)!r} and must name at least {','.join(REQUIRED)}"
        )
    index = {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}
    rows: dict[str, list] = {
        name: [] for name in ("Date", "Open", "High", "Low", "Close", "Volume")
    }
    previous: datetime.date | None = None
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != len(header):
            raise CSVError(
                f"{path}, line {number}: expected {len(header)} fields "
                f"({','.join(header)}), got {len(fields)}: {line!r}"
            )
        date_text = fields[index["Date"]].strip()
        try:
            date = datetime.date.fromisoformat(date_text)
        except ValueError:
            raise CSVError(
                f"{path}, line {number}: Date {date_text!r} is not a date in YYYY-MM-DD form"
            ) from None
        if previous is not None and date <= previous:
            problem = "duplicate date" if date == previous else "dates out of order"
            raise CSVError(
                f"{path}, line {number}: {problem}: {date} comes after {previous}; "
                "rows must be sorted by date with one row per day"
            )
        previous = date
        values = {}
        for name in ("Open", "High", "Low", "Close"):
            values[name] = _number(fields[index[name]], name, path, number, positive=True)
        if values["High"] < values["Low"]:
            raise CSVError(
                f"{path}, line {number}: High {values['High']} is below Low {values['Low']}"
            )
        rows["Date"].append(date)
        for name, value in values.items():
            rows[name].append(value)
        if "Volume" in index:
            rows["Volume"].append(
                _number(fields[index["Volume"]], "Volume", path, number, positive=False)
            )
    if not rows["Date"]:
        raise CSVError(f"{path}: the header is there but there are no data rows")
    return Prices(
        path=path,
        dates=np.array(rows["Date"], dtype="datetime64[D]"),
        open=np.array(rows["Open"]),
        high=np.array(rows["High"]),
        low=np.array(rows["Low"]),
        close=np.array(rows["Close"]),
        volume=np.array(rows["Volume"]) if "Volume" in index else None,
    )


def _number(text: str, column: str, path: str, line: int, *, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CSVError(
            f"{path}, line {line}: {column} is {text.strip()!r}, expected a number"
        ) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        kind = "a positive" if positive else "a non-negative"
        raise CSVError(f"{path}, line {line}: {column} is {value}, expected {kind} finite number")
    return value


def day_features(prices: Prices) -> tuple[np.ndarray, list[str]]:
    """Features of each day from day 1 on: ``(n - 1, f)`` and their names.

    All are scale-free logs: return (close over previous close), range (high over low), body
    (close over open), gap (open over previous close), and, with volumes, the volume change.
    Row ``d - 1`` uses only days ``d - 1`` and ``d``: nothing from the future.

    Example:
      >>> import numpy as np
      >>> from experiments.stock.data import Prices, day_features
      >>> p = Prices("x", np.arange(3).astype("datetime64[D]"), *[np.array([1.0, 2, 4])] * 4,
      ...            None)
      >>> features, names = day_features(p)
      >>> features.shape, names[0]
      ((2, 4), 'return')
    """
    c_prev = prices.close[:-1]
    columns = {
        "return": np.log(prices.close[1:] / c_prev),
        "range": np.log(prices.high[1:] / prices.low[1:]),
        "body": np.log(prices.close[1:] / prices.open[1:]),
        "gap": np.log(prices.open[1:] / c_prev),
    }
    if prices.volume is not None and np.all(prices.volume > 0):
        columns["volume change"] = np.log(prices.volume[1:] / prices.volume[:-1])
    elif prices.volume is not None:
        zero = np.flatnonzero(prices.volume == 0)
        warnings.warn(
            f"{prices.path}: Volume is 0 on {len(zero)} day(s) (first {prices.dates[zero[0]]}), "
            "so the 'volume change' feature (a ratio of volumes) is left out",
            stacklevel=2,
        )
    return np.stack(list(columns.values()), axis=-1), list(columns)


@dataclasses.dataclass(frozen=True)
class Split:
    """Windows whose target day falls in one chronological span."""

    inputs: np.ndarray  # (n, window, f) normalised features, float32
    targets: np.ndarray  # (n,) normalised next-day log return, float32
    last_close: np.ndarray  # (n,) close of the window's last day
    next_close: np.ndarray  # (n,) the close to predict
    next_return: np.ndarray  # (n,) log(next_close / last_close)
    dates: np.ndarray  # (n,) the date of the predicted close


@dataclasses.dataclass(frozen=True)
class Dataset:
    train: Split
    val: Split
    test: Split
    feature_names: list[str]
    mean: np.ndarray  # (f,) training-span mean of each feature
    std: np.ndarray  # (f,) training-span std
    target_mean: float
    target_std: float

    def to_return(self, normalised: np.ndarray) -> np.ndarray:
        """Model outputs back to log returns."""
        return np.asarray(normalised, np.float64) * self.target_std + self.target_mean


def make_dataset(prices: Prices, window: int, val_fraction: float, test_fraction: float):
    """Chronological train/val/test windows, normalised with training-span statistics only.

    Target day ``k`` (a close to predict) belongs to train, val or test by its position in
    time; its window is the features of days ``k - window .. k - 1``. Feature means and
    standard deviations come from the days before the first validation target: nothing
    after the training span influences the training inputs or the normalisation.

    Example:
      >>> import numpy as np
      >>> from experiments.stock.data import Prices, make_dataset
      >>> rng = np.random.default_rng(0)
      >>> close = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(200)))
      >>> p = Prices("x", np.arange(200).astype("datetime64[D]"), close, close * 1.01,
      ...            close * 0.99, close, None)
      >>> ds = make_dataset(p, window=10, val_fraction=0.15, test_fraction=0.15)
      >>> ds.train.inputs.shape[1:], len(ds.test.targets) > 0
      ((10, 4), True)
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction and test_fraction must be in (0, 1) with a sum below 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    features, names = day_features(prices)  # row d - 1 describes day d
    n_days = len(prices)
    targets_k = np.arange(window + 1, n_days)  # days whose close is predicted
    if len(targets_k) < MIN_TARGETS:
        raise CSVError(
            f"{prices.path} has {n_days} days: too few for windows of {window} days and three "
            f"splits; it needs at least {window + 1 + MIN_TARGETS} (window + {1 + MIN_TARGETS})"
        )
    n = len(targets_k)
    val_at, test_at = int(n * (1 - val_fraction - test_fraction)), int(n * (1 - test_fraction))
    if not 0 < val_at < test_at < n:
        raise CSVError(
            f"{prices.path}: {n} windows of {window} days split with val_fraction "
            f"{val_fraction} and test_fraction {test_fraction} leave a split empty "
            f"({val_at} train, {test_at - val_at} validation, {n - test_at} test)"
        )
    val_start, test_start = targets_k[val_at], targets_k[test_at]
    # Training span: days 1 .. val_start - 1, i.e. feature rows 0 .. val_start - 2.
    train_rows = features[: val_start - 1]
    mean, std = train_rows.mean(axis=0), train_rows.std(axis=0) + 1e-12
    returns = np.log(prices.close[1:] / prices.close[:-1])  # returns[d - 1] = day d
    train_returns = returns[targets_k[targets_k < val_start] - 1]
    target_mean, target_std = float(train_returns.mean()), float(train_returns.std() + 1e-12)
    normalised = (features - mean) / std

    def split(lo, hi) -> Split:
        ks = targets_k[(targets_k >= lo) & (targets_k < hi)]
        inputs = np.stack([normalised[k - 1 - window : k - 1] for k in ks])
        return Split(
            inputs=inputs.astype(np.float32),
            targets=((returns[ks - 1] - target_mean) / target_std).astype(np.float32),
            last_close=prices.close[ks - 1],
            next_close=prices.close[ks],
            next_return=returns[ks - 1],
            dates=prices.dates[ks],
        )

    return Dataset(
        train=split(0, val_start),
        val=split(val_start, test_start),
        test=split(test_start, n_days),
        feature_names=names,
        mean=mean,
        std=std,
        target_mean=target_mean,
        target_std=target_std,
    )
