"""The API fuzzer (`fuzz_api`) in a bounded profile: every drawn call of the public API returns
what the reference returns, or is refused by jaxrnn with an error that names the argument.

``JAXRNN_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py -p no:randomly`` runs it long
(spread over the targets in proportion to the bounded profile's shares).
"""

import os

import pytest
from fuzz_api import TARGETS
from fuzz_api import flax_nnx
from fuzz_api import verify
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings

# Examples per target in `make test` (about 50 s of one core in all), weighted by how much
# each target can go wrong and how long one example takes; the long run multiplies them up to
# JAXRNN_FUZZ_EXAMPLES in all.
SHARES = {
    "unroll": 25,
    "heads": 8,
    "packing": 6,
    "text": 25,
    "decode": 20,
    "misc": 40,
    "nnx": 10,
    "interop": 15,
}
LONG = int(os.environ.get("JAXRNN_FUZZ_EXAMPLES", "0"))


def examples(target: str) -> int:
    if not LONG:
        return SHARES[target]
    return max(1, LONG * SHARES[target] // sum(SHARES.values()))


@pytest.mark.allow_promotion  # user code promotes; the fuzzer calls jaxrnn as users do
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_call_is_right_or_names_its_bad_argument(target):
    if target == "nnx":
        pytest.importorskip("flax")
        flax_nnx()

    @settings(
        max_examples=examples(target),
        derandomize=not LONG,
        suppress_health_check=list(HealthCheck),
        deadline=None,
        database=None,
    )
    @given(TARGETS[target]())
    def check(call):
        verify(call)

    check()
