"""``python -m ceal_pipeline_tests.badinput [--verbose]``: try every bad input, print counts by verdict.

Exit status 1 when any input got a traceback, a silent acceptance or lost frames.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from ceal_pipeline_tests.badinput.corpus import GOOD_VERDICTS, all_cases, available, try_case


def main(argv: list[str]) -> int:
    verbose = "--verbose" in argv
    by_verdict: Counter = Counter()
    by_family: dict[str, Counter] = {}
    bad = []
    with tempfile.TemporaryDirectory(prefix="ceal-badinput-") as tmp:
        for i, case in enumerate(all_cases()):
            if not available(case):
                by_verdict["skipped (no sample)"] += 1
                continue
            result = try_case(case, Path(tmp) / f"{i:03d}")
            by_verdict[result.kind] += 1
            by_family.setdefault(case.family, Counter())[result.kind] += 1
            if result.kind not in GOOD_VERDICTS:
                bad.append((case.family, case.name, result))
            if verbose:
                print(f"{case.family:<10} {case.name:<45} {result.kind:<11} {result.detail[:160]!r}")
    print(json.dumps({"inputs": sum(by_verdict.values()), "by_verdict": dict(by_verdict),
                      "by_family": {f: dict(c) for f, c in sorted(by_family.items())}}))
    for family, name, result in bad:
        print(f"NOT OK {family}/{name}: {result.kind}: {result.detail}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
