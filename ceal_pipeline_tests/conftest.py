"""A hermetic project configuration, and Hypothesis profiles: deterministic in CI, exploring while developing.

The code location reads its defaults from the project configuration when it is
imported (:mod:`ceal_pipeline.configuration`); the tests must see the built-in
``gpu`` preset, not a ``ceal.yaml`` or ``CEAL_*`` variables of the machine they
run on, so those are cleared and ``CEAL_HOME`` points at an empty folder here,
before any test module imports the package.

``ci`` (the default, and what ``.ci/run`` selects): ``derandomize=True`` draws
the same examples on every machine and every run, so a commit passes or fails
CI on its merits, not by the luck of the draw; no example database is read or
written. ``dev`` explores new examples on every run and remembers failures in
``.hypothesis/``; select it with ``HYPOTHESIS_PROFILE=dev make test``. A
failure the exploring profile finds becomes an ``@example`` on its test, so CI
checks it from then on.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import settings

for _variable in [name for name in os.environ if name.startswith("CEAL_") and name != "CEAL_DATASETS"]:
    del os.environ[_variable]
os.environ["CEAL_HOME"] = tempfile.mkdtemp(prefix="ceal-tests-")

# No per-example deadline in CI: a shared 2-core machine can stall any example past Hypothesis's
# 200 ms, and a test must pass or fail on what it checks, never on the machine's load.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True, deadline=None)
settings.register_profile("dev", derandomize=False, print_blob=True)

PROFILES = ("ci", "dev")
_profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if _profile not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE={_profile!r}: use one of {', '.join(PROFILES)}")
settings.load_profile(_profile)
