"""Runs the API fuzzer without stopping at the first failure and prints what it found, grouped:
``python tests/fuzz_report.py 2000`` (examples in all, spread as in `test_fuzz.SHARES`).

This is how the closing notes count what the fuzzer finds by itself; `tests/test_fuzz.py` is the
test."""

import collections
import re
import sys
import time

from fuzz_api import TARGETS
from fuzz_api import Finding
from fuzz_api import flax_nnx
from fuzz_api import verify
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from test_fuzz import SHARES


def main(total: int) -> None:
    found = collections.defaultdict(list)
    counted = collections.Counter()
    start = time.time()
    flax_nnx()
    for target in sorted(TARGETS):
        n = max(1, total * SHARES[target] // sum(SHARES.values()))
        run = _runner(target, n, found, counted)
        run()
        print(f"{target}: {counted[target]} examples, {time.time() - start:.0f} s", flush=True)
    print(f"\n{sum(counted.values())} examples; {len(found)} kinds of finding")
    for (target, shape), cases in sorted(found.items()):
        print(f"\n[{target}] {shape}: {len(cases)} cases, e.g.")
        for case in sorted(set(cases), key=len)[:3]:
            print("   ", case)


def _runner(target, n, found, counted):
    @settings(max_examples=n, suppress_health_check=list(HealthCheck), deadline=None, database=None)
    @given(TARGETS[target]())
    def run(call):
        counted[target] += 1
        try:
            verify(call)
        except Finding as finding:
            # One group per kind of finding and function called (numbers blanked out).
            shape = re.sub(r"\d+", "#", call.what.split("(")[0] + ": " + finding.kind)
            found[(target, shape)].append(str(finding)[:400])

    return run


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
