"""Hypothesis profiles: deterministic in CI, exploring while developing.

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

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", derandomize=False, print_blob=True)

PROFILES = ("ci", "dev")
_profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if _profile not in PROFILES:
    raise ValueError(f"HYPOTHESIS_PROFILE={_profile!r}: use one of {', '.join(PROFILES)}")
settings.load_profile(_profile)
