"""Spec: the selection stage (core.selection.select_batch) buys by value, class need, diversity and money.

Hand-computed cases for each method, and the invariants: the budget is never
exceeded, diversity weight 0 and uniform class need are ``topk``, ``topk`` is
``select_top_k``, the cap always holds, the candidates' order never matters,
and a round where every value ties says which signal decided it.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ceal_pipeline.core.class_balance import class_need, frame_class_weights
from ceal_pipeline.core.selection import (
    DECISIVE_SIGNALS,
    LabelingBudget,
    SelectionCandidates,
    SelectionPolicy,
    select_batch,
    select_top_k,
)

EMPTY_FRAME_FLOOR = -25.49  # nats: localization entropy of a frame without detections


def test_topk_buys_the_best_values_with_the_per_sequence_cap():
    candidates = SelectionCandidates(
        np.array(["a1", "a2", "a3", "b1", "c1"]), np.array([0.9, 0.8, 0.7, 0.5, 0.1]), np.array(list("aaabc")),
    )
    chosen = select_batch(candidates, SelectionPolicy(per_sequence_cap=2), k=3)
    assert chosen.frame_ids.tolist() == ["a1", "a2", "b1"]
    assert chosen.decided_by == ("acquisition_value",) * 3
    assert chosen.values.tolist() == pytest.approx([1.0, 0.8, 0.4])  # rank-normalised: (rank + 1) / n
    assert chosen.acquisition_values.tolist() == [0.9, 0.8, 0.5]
    assert chosen.estimated_cost is None and chosen.stopped_by == "k"


def test_class_balance_prefers_frames_of_the_under_represented_class():
    # Labeled: 90 cars, 10 pedestrians. Smoothed shares 91/102 and 11/102; need = uniform share / share
    # = 102/182 and 102/22, divided by their mean: 0.2157 and 1.7843.
    need = class_need(np.array([90, 10]), None)
    expected_need = np.array([102 / 182, 102 / 22]) / np.mean([102 / 182, 102 / 22])
    assert need == pytest.approx(expected_need)
    candidates = SelectionCandidates(
        np.array(["cars", "pedestrian", "empty"]), np.array([3.0, 2.0, 1.0]),
        class_counts=np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 0.0]]),
    )
    chosen = select_batch(candidates, SelectionPolicy(method="class_balance"), k=2,
                          labeled_class_counts=np.array([90, 10]))
    # Values 1, 2/3, 1/3 times weights 0.2157, 1.7843, 1 (no expected object: neutral).
    assert chosen.frame_ids.tolist() == ["pedestrian", "empty"]
    assert chosen.class_weights == pytest.approx([expected_need[1], 1.0])
    assert chosen.values == pytest.approx([2 / 3 * expected_need[1], 1 / 3])
    assert chosen.decided_by == ("class_balance", "class_balance")


def test_class_balance_by_last_rounds_ap_weights_each_frame_by_its_objects():
    need = class_need(None, np.array([0.6, 0.0, np.nan]))
    # 1 - AP = 0.4 and 1.0; the unknown class takes their mean 0.7; mean-1 normalisation.
    assert need == pytest.approx(np.array([0.4, 1.0, 0.7]) / 0.7)
    weights = frame_class_weights(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), need)
    assert weights == pytest.approx([(0.4 + 1.0) / 2 / 0.7, 1.0])
    both = class_need(np.array([10, 10, 10]), np.array([0.6, 0.0, np.nan]), strength=2.0)
    assert both == pytest.approx(need**2 / np.mean(need**2))  # uniform counts add nothing


def test_diversity_trades_value_against_distance_to_the_batch():
    # a and b are near-duplicates (0.1 apart), c is far; values a > b > c.
    candidates = SelectionCandidates(
        np.array(["a", "b", "c"]), np.array([3.0, 2.0, 1.0]), embeddings=np.array([[0.0], [0.1], [10.0]]),
    )
    assert select_batch(candidates, SelectionPolicy(), k=2).frame_ids.tolist() == ["a", "b"]
    # Weight 0.5, centroid 3.3667: first pick a (0.5 * 1 + 0.5 * 3.3667 / 6.6333 = 0.754 beats c's
    # 0.5 / 3 + 0.5 = 0.667); then b is 0.1 from a (0.333 + 0.0075) and c 6.63 (0.167 + 0.5): c.
    mixed = select_batch(candidates, SelectionPolicy(method="diversity", diversity_weight=0.5), k=2)
    assert mixed.frame_ids.tolist() == ["a", "c"]
    assert mixed.decided_by == ("acquisition_value", "diversity")
    assert mixed.values == pytest.approx([0.5 + 0.5 * 3.3667 / 6.6333, 1 / 6 + 0.5], abs=1e-4)
    # Weight 1 is k-center greedy: the frame farthest from the centroid, then the farthest from it.
    k_center = select_batch(candidates, SelectionPolicy(method="diversity", diversity_weight=1.0), k=2)
    assert k_center.frame_ids.tolist() == ["c", "a"]


def test_budget_buys_value_per_cost_until_nothing_fits():
    # Costs: 1 per frame + 1 per cuboid = 11, 1, 2; value per cost: a 1/11, b (2/3)/1, c (1/3)/2.
    candidates = SelectionCandidates(np.array(["a", "b", "c"]), np.array([3.0, 2.0, 1.0]),
                                     cuboids=np.array([10, 0, 1]))
    policy = SelectionPolicy(budget=LabelingBudget(amount=12.0, price_per_frame=1.0, price_per_cuboid=1.0))
    chosen = select_batch(candidates, policy)
    # b first, then c (a would have fitted the 11 left but buys less value per cost); then 9 are left.
    assert chosen.frame_ids.tolist() == ["b", "c"]
    assert chosen.costs.tolist() == [1.0, 2.0] and chosen.estimated_cost == 3.0
    assert chosen.stopped_by == "budget"  # a is left and costs 11
    assert chosen.decided_by == ("value_per_cost", "value_per_cost")  # a had the higher value each time
    # With 3 to spend a never fits: b and c are then simply the best values that do.
    tight = select_batch(candidates, SelectionPolicy(budget=LabelingBudget(3.0, 1.0, 1.0)))
    assert tight.frame_ids.tolist() == ["b", "c"] and tight.decided_by == ("acquisition_value",) * 2
    # K and money together: whichever binds first.
    assert select_batch(candidates, policy, k=1).frame_ids.tolist() == ["b"]
    # A price list without an amount only estimates the cost of a top-K batch.
    priced = select_batch(candidates, SelectionPolicy(budget=LabelingBudget(None, 2.0, 0.5)), k=2)
    assert priced.frame_ids.tolist() == ["a", "b"] and priced.estimated_cost == 2 + 5 + 2


def test_a_round_where_the_detector_finds_nothing_is_decided_by_diversity_not_by_frame_id():
    rng = np.random.default_rng(3)
    ids = np.array([f"seq0-{i:03d}" for i in range(40)])
    candidates = SelectionCandidates(ids, np.full(40, EMPTY_FRAME_FLOOR), embeddings=rng.normal(size=(40, 8)),
                                     class_counts=np.zeros((40, 4)))
    for method in ("topk", "class_balance", "diversity", "class_balance_diversity"):
        chosen = select_batch(candidates, SelectionPolicy(method=method), k=5, labeled_class_counts=np.ones(4))
        assert chosen.decided_by == ("diversity",) * 5, method
        assert chosen.summary()["decided_by"] == "diversity"
        assert chosen.frame_ids.tolist() != ids[:5].tolist()
    blind = select_batch(SelectionCandidates(ids, np.full(40, EMPTY_FRAME_FLOOR)), SelectionPolicy(), k=3)
    assert blind.frame_ids.tolist() == ids[:3].tolist()
    assert blind.summary()["decided_by"] == "tie_break_frame_id"  # said, not hidden


def test_missing_inputs_name_the_field_and_the_fix():
    plain = SelectionCandidates(np.array(["a", "b"]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="class_counts"):
        select_batch(plain, SelectionPolicy(method="class_balance"), k=1, labeled_class_counts=np.ones(2))
    with pytest.raises(ValueError, match="embeddings"):
        select_batch(plain, SelectionPolicy(method="diversity"), k=1)
    with pytest.raises(ValueError, match="cuboid"):
        select_batch(plain, SelectionPolicy(budget=LabelingBudget(5.0, 1.0, 2.0)))
    with pytest.raises(ValueError, match="give k"):
        select_batch(plain, SelectionPolicy())
    with pytest.raises(ValueError, match="k=3.*only 2"):
        select_batch(plain, SelectionPolicy(), k=3)
    with pytest.raises(ValueError, match="price_per_frame"):
        LabelingBudget(amount=10.0, price_per_frame=0.0, price_per_cuboid=1.0)
    with pytest.raises(ValueError, match="unknown selection method"):
        SelectionPolicy(method="random")


# -- properties ------------------------------------------------------------------------------


@st.composite
def scored_candidates(draw, max_n: int = 40):
    """Candidates with many ties (integer values), sequences, classes, embeddings and box counts."""
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    ids = np.array([f"f{i:03d}" for i in rng.permutation(n)])
    return SelectionCandidates(
        frame_ids=ids,
        acquisition_values=rng.integers(-3, 3, n).astype(float) * draw(st.sampled_from([1.0, 0.37, 8.5])),
        sequence_ids=rng.integers(0, draw(st.integers(1, 6)), n),
        class_counts=rng.poisson(0.7, size=(n, 3)).astype(float),
        embeddings=rng.integers(0, 4, size=(n, 2)).astype(float),  # duplicates on purpose
        cuboids=rng.poisson(3.0, n).astype(float),
    )


def _shuffled(candidates: SelectionCandidates, seed: int) -> SelectionCandidates:
    order = np.random.default_rng(seed).permutation(len(candidates))
    return SelectionCandidates(*(None if column is None else np.asarray(column)[order] for column in (
        candidates.frame_ids, candidates.acquisition_values, candidates.sequence_ids, candidates.class_counts,
        candidates.embeddings, candidates.cuboids)))


methods = st.sampled_from(["topk", "class_balance", "diversity", "class_balance_diversity"])


@settings(max_examples=60, deadline=None)
@given(scored_candidates(), methods, st.floats(0.0, 60.0), st.floats(0.5, 5.0), st.floats(0.0, 3.0),
       st.one_of(st.none(), st.integers(1, 3)))
def test_the_budget_is_never_exceeded_and_is_spent_until_nothing_fits(candidates, method, amount, per_frame,
                                                                      per_cuboid, cap):
    budget = LabelingBudget(amount=amount, price_per_frame=per_frame, price_per_cuboid=per_cuboid)
    chosen = select_batch(candidates, SelectionPolicy(method=method, per_sequence_cap=cap, budget=budget),
                          labeled_class_counts=np.array([30, 5, 1]))
    assert chosen.estimated_cost <= amount
    assert chosen.estimated_cost == pytest.approx(per_frame * len(chosen) + per_cuboid * float(
        np.sum(np.asarray(candidates.cuboids)[np.isin(candidates.frame_ids, chosen.frame_ids)])))
    left = ~np.isin(candidates.frame_ids, chosen.frame_ids)
    if cap is None:  # nothing left would still have fitted
        costs = per_frame + per_cuboid * np.asarray(candidates.cuboids)[left]
        assert (chosen.estimated_cost + costs > amount).all()


@settings(max_examples=60, deadline=None)
@given(scored_candidates(), st.sampled_from(["diversity", "class_balance_diversity"]), st.data())
def test_diversity_weight_zero_is_topk(candidates, method, data):
    k = data.draw(st.integers(0, len(candidates)))
    plain = "class_balance" if method == "class_balance_diversity" else "topk"
    counts = np.array([30, 5, 1])
    without = select_batch(candidates, SelectionPolicy(method=plain), k=k, labeled_class_counts=counts)
    weightless = select_batch(candidates, SelectionPolicy(method=method, diversity_weight=0.0), k=k,
                              labeled_class_counts=counts)
    assert weightless.frame_ids.tolist() == without.frame_ids.tolist()


@settings(max_examples=60, deadline=None)
@given(scored_candidates(), st.integers(0, 50), st.floats(0.0, 1.0), st.data())
def test_class_balance_with_uniform_need_is_topk(candidates, per_class, ap, data):
    k = data.draw(st.integers(0, len(candidates)))
    topk = select_batch(candidates, SelectionPolicy(), k=k)
    uniform = select_batch(candidates, SelectionPolicy(method="class_balance"), k=k,
                           labeled_class_counts=np.full(3, per_class), class_ap=np.full(3, ap))
    assert uniform.frame_ids.tolist() == topk.frame_ids.tolist()
    assert (uniform.class_weights == 1.0).all()


@settings(max_examples=60, deadline=None)
@given(scored_candidates(), st.integers(1, 4), st.data())
def test_topk_is_todays_select_top_k_exactly(candidates, cap, data):
    sequences = np.asarray(candidates.sequence_ids)
    selectable = sum(min(cap, int((sequences == s).sum())) for s in np.unique(sequences))
    k = data.draw(st.integers(0, selectable))
    expected = select_top_k(candidates.frame_ids, candidates.acquisition_values, k, sequences, per_sequence_cap=cap)
    plain = SelectionCandidates(candidates.frame_ids, candidates.acquisition_values, sequences)
    assert select_batch(plain, SelectionPolicy(per_sequence_cap=cap), k=k).frame_ids.tolist() == expected.tolist()
    by_id = select_batch(candidates, SelectionPolicy(per_sequence_cap=cap, tie_break="frame_id"), k=k)
    assert by_id.frame_ids.tolist() == expected.tolist()


@settings(max_examples=60, deadline=None)
@given(scored_candidates(), methods, st.integers(1, 3), st.floats(0.0, 1.0), st.booleans(), st.data())
def test_the_cap_holds_and_the_order_of_the_candidates_does_not_matter(candidates, method, cap, weight, budgeted,
                                                                       data):
    budget = LabelingBudget(amount=25.0, price_per_frame=1.0, price_per_cuboid=0.5) if budgeted else None
    policy = SelectionPolicy(method=method, per_sequence_cap=cap, diversity_weight=weight, budget=budget)
    k = None if budgeted else 0
    if not budgeted:
        sequences = np.asarray(candidates.sequence_ids)
        k = data.draw(st.integers(0, sum(min(cap, int((sequences == s).sum())) for s in np.unique(sequences))))
    extras = dict(labeled_class_counts=np.array([30, 5, 1]), class_ap=np.array([0.5, 0.1, np.nan]))
    chosen = select_batch(candidates, policy, k=k, **extras)
    sequence_of = dict(zip(candidates.frame_ids.tolist(), np.asarray(candidates.sequence_ids).tolist()))
    bought = [sequence_of[f] for f in chosen.frame_ids.tolist()]
    assert max((bought.count(s) for s in set(bought)), default=0) <= cap
    assert len(set(chosen.frame_ids.tolist())) == len(chosen)
    assert set(chosen.decided_by) <= set(DECISIVE_SIGNALS)
    again = select_batch(_shuffled(candidates, data.draw(st.integers(0, 1000))), policy, k=k, **extras)
    assert again.frame_ids.tolist() == chosen.frame_ids.tolist()
    assert again.decided_by == chosen.decided_by
    assert again.values.tolist() == chosen.values.tolist()
