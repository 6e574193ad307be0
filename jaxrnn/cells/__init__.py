"""Cell families: one file each with the maths of one step, its init and its carry."""

from jaxrnn.cells.base import Cell
from jaxrnn.cells.elman import elman
from jaxrnn.cells.gru import gru
from jaxrnn.cells.lstm import LSTMCarry
from jaxrnn.cells.lstm import lstm

__all__ = ["Cell", "LSTMCarry", "elman", "gru", "lstm"]
