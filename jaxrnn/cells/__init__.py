"""Cell families: one file each with the maths of one step, its init, its carry, and its
`Family` record (gate count, PyTorch/Flax/Keras names and weight converters); `FAMILIES` lists them.
"""

from jaxrnn.cells import conv as _conv
from jaxrnn.cells import elman as _elman
from jaxrnn.cells import gru as _gru
from jaxrnn.cells import lru as _lru
from jaxrnn.cells import lstm as _lstm
from jaxrnn.cells import mamba as _mamba
from jaxrnn.cells import mgu as _mgu
from jaxrnn.cells import minimal as _minimal
from jaxrnn.cells import mlstm as _mlstm
from jaxrnn.cells import rglru as _rglru
from jaxrnn.cells import slstm as _slstm
from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import Family
from jaxrnn.cells.base import LinearRecurrence
from jaxrnn.cells.conv import conv_lstm
from jaxrnn.cells.elman import elman
from jaxrnn.cells.gru import gru
from jaxrnn.cells.lru import lru
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.cells.lstm import lstm
from jaxrnn.cells.mamba import mamba
from jaxrnn.cells.mgu import mgu
from jaxrnn.cells.minimal import mingru
from jaxrnn.cells.minimal import minlstm
from jaxrnn.cells.mlstm import MLSTMCarry
from jaxrnn.cells.mlstm import mlstm
from jaxrnn.cells.rglru import rg_lru
from jaxrnn.cells.slstm import SLSTMCarry
from jaxrnn.cells.slstm import slstm

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        _elman.FAMILY,
        _lstm.FAMILY,
        _gru.FAMILY,
        _gru.RESET_BEFORE,
        _mgu.FAMILY,
        _minimal.MINGRU,
        _minimal.MINLSTM,
        _mlstm.FAMILY,
        _lru.FAMILY,
        _rglru.FAMILY,
        _conv.FAMILY,
        _mamba.FAMILY,
        _slstm.FAMILY,
    )
}


def by_name(name: str, hidden_size: int, *, allowed=None, **options) -> Cell:
    """The cell of family ``name``: ``jaxrnn.<name>(hidden_size, **options)``, with a clear
    error for a name outside ``allowed`` (default: every family in `FAMILIES`).

    Examples:
      >>> from jaxrnn.cells import by_name
      >>> by_name("gru", 8)
      jaxrnn.gru(hidden_size=8)
      >>> by_name("mingru", 8, allowed=("lstm", "gru"))
      Traceback (most recent call last):
      ...
      ValueError: cell must be one of ['gru', 'lstm'], got 'mingru'
    """
    if isinstance(allowed, str) or not set(allowed or ()) <= set(FAMILIES):
        raise ValueError(f"allowed must name families of {sorted(FAMILIES)}, got {allowed!r}")
    names = sorted(FAMILIES if allowed is None else allowed)
    if name not in names:
        raise ValueError(f"cell must be one of {names}, got {name!r}")
    return FAMILIES[name].make(hidden_size, **options)


__all__ = [
    "FAMILIES",
    "Cell",
    "Family",
    "LSTMCarry",
    "LinearRecurrence",
    "MLSTMCarry",
    "SLSTMCarry",
    "by_name",
    "conv_lstm",
    "elman",
    "gru",
    "lru",
    "lstm",
    "mamba",
    "mgu",
    "mingru",
    "minlstm",
    "mlstm",
    "rg_lru",
    "slstm",
]
