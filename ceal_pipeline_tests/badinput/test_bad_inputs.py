"""Every malformed input is quarantined with its reason and file, or refused with a clean
error naming the file: never a traceback, never a silent acceptance, never a lost source."""

from __future__ import annotations

import pytest

from ceal_pipeline_tests.badinput.corpus import GOOD_VERDICTS, all_cases, available, try_case

CASES = all_cases()


def test_the_corpus_holds_at_least_sixty_inputs_across_readers_shards_and_deliveries():
    families = {case.family for case in CASES}
    assert len(CASES) >= 60
    assert {"mmdet3d", "aimotive", "points", "images", "shards", "deliveries"} <= families


@pytest.mark.parametrize("case", CASES, ids=[f"{c.family}/{c.name}" for c in CASES])
def test_a_bad_input_is_quarantined_or_refused_naming_its_file(case, tmp_path):
    if not available(case):
        pytest.skip("the aiMotive sample is not on this machine (../shared/datasets)")
    result = try_case(case, tmp_path)
    assert result.kind in GOOD_VERDICTS, f"{case.family}/{case.name}: {result.kind}: {result.detail}"
