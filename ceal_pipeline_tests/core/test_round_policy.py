"""A round's policy in the core: when the detector is reused or warm-started, K and the cap, the select step."""

from __future__ import annotations

import numpy as np
import pytest

from ceal_pipeline.core.round import labeled_fingerprint, plan_training, select, selection_size

TRAINING = {"warm_start": True, "epochs": 8, "fine_tune_epochs": 3}


def test_a_published_detector_is_reused_once_the_pool_is_drawn_or_while_the_labeled_set_is_unchanged():
    same = labeled_fingerprint(["b", "a"])
    assert same == labeled_fingerprint(["a", "b"]) != labeled_fingerprint(["a", "c"])
    drawn = plan_training(published={"labeled_fingerprint": "other"}, pool_drawn=True, fingerprint=same,
                          has_previous=True, **TRAINING)
    unchanged = plan_training(published={"labeled_fingerprint": same}, pool_drawn=False, fingerprint=same,
                              has_previous=True, **TRAINING)
    stale = plan_training(published={"labeled_fingerprint": "other"}, pool_drawn=False, fingerprint=same,
                          has_previous=True, **TRAINING)
    assert drawn.reuse and unchanged.reuse and not stale.reuse


@pytest.mark.parametrize("has_previous, warm_start, fine_tune_epochs, expected", [
    (True, True, 3, (True, 3)),    # warm start: the fine-tuning epochs
    (True, True, 0, (True, 8)),    # no fine-tuning epochs configured: the full schedule, warm
    (False, True, 3, (False, 8)),  # round 0 has nothing to start from
    (True, False, 3, (False, 8)),  # warm start switched off
])
def test_training_warm_starts_from_the_previous_round_with_its_own_epochs(has_previous, warm_start,
                                                                          fine_tune_epochs, expected):
    plan = plan_training(published=None, pool_drawn=False, fingerprint="f", has_previous=has_previous,
                         warm_start=warm_start, epochs=8, fine_tune_epochs=fine_tune_epochs)
    assert (plan.reuse, plan.warm_start, plan.epochs) == (False, *expected)


def test_k_and_the_cap_are_the_rounds_unless_a_rerun_overrides_them():
    assert selection_size(30, 2) == (30, 2)
    assert selection_size(30, 2, k=5) == (5, 2)
    assert selection_size(30, 2, per_sequence_cap=0) == (30, 0)
    with pytest.raises(ValueError, match="K must be at least 1"):
        selection_size(30, 2, k=0)


def test_the_select_step_buys_only_eligible_candidates_best_first_within_the_cap():
    ids = np.array(["a1", "a2", "a3", "b1", "labeled", "pruned", "awaiting"], dtype=object)
    scores = np.array([9.0, 8.0, 7.0, 1.0, 10.0, 10.0, 10.0])
    chosen = select(ids, scores, 3, round_index=2, label_rounds={"labeled": 1}, pruned={"pruned"},
                    awaiting_labels={"awaiting"}, sequences_of=lambda f: [str(i)[0] for i in f], per_sequence_cap=2)
    assert list(chosen.frame_ids) == ["a1", "a2", "b1"]
    assert list(chosen.scores) == [9.0, 8.0, 1.0] and list(chosen.sequences) == ["a", "a", "b"]
    assert chosen.eligible == 4
    with pytest.raises(ValueError, match="K=5 but only 4 freshly scored candidates are selectable"):
        select(ids, scores, 5, round_index=2, label_rounds={"labeled": 1}, pruned={"pruned"},
               awaiting_labels={"awaiting"})
