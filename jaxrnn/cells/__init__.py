"""Cell families: one file each with the maths of one step, its init and its carry."""

from jaxrnn.cells.base import Cell
from jaxrnn.cells.base import LinearRecurrence
from jaxrnn.cells.elman import elman
from jaxrnn.cells.gru import gru
from jaxrnn.cells.lru import lru
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.cells.lstm import lstm
from jaxrnn.cells.minimal import mingru
from jaxrnn.cells.minimal import minlstm

__all__ = [
    "Cell",
    "LSTMCarry",
    "LinearRecurrence",
    "elman",
    "gru",
    "lru",
    "lstm",
    "mingru",
    "minlstm",
]
