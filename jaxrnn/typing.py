"""Type aliases and the dimension legend used in every docstring of jaxrnn.

Dimension letters:

====  ==========================================
``b``  batch (any number of leading batch axes)
``t``  time
``i``  input features
``h``  hidden units
``g``  gates times hidden (``4h`` for the LSTM, ``3h`` for the GRU)
``v``  vocabulary
``k``  beam
====  ==========================================

A shape written ``(b, t, i)`` is batch-major; ``(t, b, i)`` is time-major.
"""

from collections.abc import Callable
from typing import Any

import jax

Array = jax.Array
PRNGKey = jax.Array
Params = Any  # a plain pytree of arrays (dicts of arrays for every jaxrnn cell)
Carry = Any  # an array (b, h) or a NamedTuple of them, e.g. LSTMCarry(h, c)
Activation = Callable[[Array], Array]
