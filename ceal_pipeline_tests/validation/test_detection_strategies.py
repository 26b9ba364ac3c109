"""Specification of the detection benchmark's strategies and its round: names, the
pipeline's round rules (core.round), pruning before selection, the budget check
(numpy only: no detector is trained here)."""

from __future__ import annotations

import numpy as np
import pytest

from ceal_pipeline.core.sampling import pool_size
from ceal_pipeline.core import round as core_round
from ceal_pipeline.core import round_driver
from ceal_pipeline.validation.detection.presets import DETECTION_PRESET_NAMES, get_detection_preset
from ceal_pipeline.validation.detection.protocol import DetectionProtocolConfig
from ceal_pipeline.validation.detection.strategies import (
    SelectionChoice,
    ceal_strategy_name,
    selection_stage_strategies,
    parse_detection_strategy,
    selection_choice,
    unpruned_twin,
)
from ceal_pipeline.validation.strategies import Strategy, acquire

#: Where the benchmarks' round looks each core.round step up (the spies replace them there).
ROUND_STEPS = {"draw_candidate_pool": round_driver, "selectable": core_round}


def test_the_selection_stage_strategies_add_class_balance_diversity_pruning_and_money_to_ceal():
    assert selection_stage_strategies() == [
        "random", "heatmap_entropy", "ceal_heatmap_entropy_5pct", "ceal_heatmap_entropy_5pct_balanced",
        "ceal_heatmap_entropy_5pct_diverse", "ceal_heatmap_entropy_5pct_balanced_diverse",
        "ceal_heatmap_entropy_5pct_balanced_diverse_pruned", "ceal_heatmap_entropy_5pct_balanced_diverse_budget",
    ]
    assert selection_choice("ceal_heatmap_entropy_5pct_balanced_diverse_budget") == SelectionChoice(True, True, True)
    assert selection_choice("ceal_heatmap_entropy_5pct_diverse") == SelectionChoice(False, True, False)
    assert selection_choice("heatmap_entropy") == selection_choice("random") == SelectionChoice(False, False, False)
    both_pruned = parse_detection_strategy("ceal_heatmap_entropy_5pct_balanced_diverse_pruned")
    assert both_pruned.pruning and both_pruned.candidate_pool_fraction == 0.05
    assert unpruned_twin("ceal_heatmap_entropy_5pct_balanced_diverse_pruned") == \
        "ceal_heatmap_entropy_5pct_balanced_diverse"


def test_strategy_names_say_the_score_function_the_candidate_pool_and_pruning():
    assert parse_detection_strategy("ceal_localization_entropy_2.5pct") == Strategy(
        "ceal_localization_entropy_2.5pct", "ceal", "localization_entropy", candidate_pool_fraction=0.025)
    pruned = parse_detection_strategy("ceal_heatmap_entropy_10pct_pruned")
    assert (pruned.acquisition_fn, pruned.candidate_pool_fraction, pruned.pruning) == ("heatmap_entropy", 0.1, True)
    assert parse_detection_strategy("heatmap_entropy").kind == "full_pool"
    assert ceal_strategy_name("localization_entropy", 0.05) == "ceal_localization_entropy_5pct"
    assert unpruned_twin("ceal_localization_entropy_10pct_pruned") == "ceal_localization_entropy_10pct"
    assert unpruned_twin("localization_entropy") is None


@pytest.mark.parametrize("name", ["entropy", "ceal_localization_entropy_0pct", "ceal_foo_5pct",
                                  "ceal_localization_entropy_500", "random_pruned",
                                  "ceal_heatmap_entropy_5pct_diverse_balanced"])
def test_unknown_detection_strategy_names_are_rejected_with_the_accepted_forms(name):
    with pytest.raises(ValueError, match=r"ceal_<function>_<percent>pct\[_balanced\]"):
        parse_detection_strategy(name)


@pytest.fixture
def round_spies(monkeypatch):
    """Count the calls into core.round made by the benchmarks' round."""
    calls = {"draw_candidate_pool": 0, "selectable": 0}
    for name in calls:
        original = getattr(ROUND_STEPS[name], name)

        def spy(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(ROUND_STEPS[name], name, spy)
    return calls


def _acquire(name: str, latest: np.ndarray, k: int = 5, **kwargs):
    values = np.random.default_rng(3).random(len(latest))
    return acquire(parse_detection_strategy(name), unlabeled=np.arange(len(latest)), latest_scores=latest, k=k,
                   score=lambda idx: values[idx], run_seed=1, round_index=1, temperature=0.1, **kwargs), values


def test_every_scoring_strategy_selects_through_core_round_and_ceal_draws_its_pool_there(round_spies):
    history = np.random.default_rng(0).random(400)
    for name in ("localization_entropy", "heatmap_entropy", "ceal_localization_entropy_5pct"):
        _acquire(name, history)
    assert round_spies == {"draw_candidate_pool": 1, "selectable": 3}


def test_a_ceal_candidate_pool_is_its_fraction_of_the_unlabeled_pool():
    history = np.random.default_rng(0).random(400)
    result, values = _acquire("ceal_localization_entropy_2.5pct", history)
    assert len(result.scored) == pool_size(400, fraction=0.025) == 10
    np.testing.assert_array_equal(result.selected, np.sort(result.scored[np.argsort(-values[result.scored])[:5]]))


def test_frames_pruned_after_scoring_cannot_be_bought_in_the_same_round():
    history = np.random.default_rng(0).random(400)
    best_first = {}

    def prune(candidates, scores):
        best_first["top"] = candidates[np.argsort(-scores)[:3]]
        return best_first["top"]

    result, _ = _acquire("ceal_localization_entropy_10pct_pruned", history, prune=prune)
    np.testing.assert_array_equal(result.pruned, np.sort(best_first["top"]))
    assert not set(result.selected) & set(best_first["top"]) and len(result.selected) == 5
    with pytest.raises(ValueError, match="no prune function"):
        _acquire("ceal_localization_entropy_10pct_pruned", history)


def test_the_per_sequence_cap_reaches_the_selection():
    history = np.random.default_rng(0).random(40)
    sequences = np.asarray([f"s{i // 10}" for i in range(40)], dtype=object)
    result, _ = _acquire("localization_entropy", history, k=4, sequence_ids=sequences, per_sequence_cap=1)
    assert len({sequences[i] for i in result.selected}) == 4


def test_the_selection_stage_runs_on_the_selectable_candidates_only_and_decides_the_batch():
    from ceal_pipeline.core.selection import LabelingBudget, SelectionCandidates, SelectionPolicy

    history = np.random.default_rng(0).random(400)
    seen = {}

    def stage_inputs(candidates, scores, sequences):
        seen.update(candidates=candidates, scores=scores)
        # The five best-scored candidates hold 9 cuboids each: at 1 per frame + 1 per cuboid they cost
        # 10, over a budget of 5, so the money buys the next five (cost 1 each) instead.
        cuboids = np.where(scores >= np.sort(scores)[-5], 9.0, 0.0)
        return SelectionCandidates(candidates, scores, cuboids=cuboids), None, None

    pruned_top = {}

    def prune(candidates, scores):
        pruned_top["ids"] = candidates[np.argsort(-scores)[:2]]
        return pruned_top["ids"]

    policy = SelectionPolicy(budget=LabelingBudget(amount=5.0, price_per_frame=1.0, price_per_cuboid=1.0))
    result, _ = _acquire("ceal_localization_entropy_10pct_pruned", history, prune=prune, policy=policy,
                         stage_inputs=stage_inputs)
    assert not set(seen["candidates"]) & set(pruned_top["ids"])  # pruned this round: never offered
    by_score = seen["candidates"][np.argsort(-seen["scores"])]
    np.testing.assert_array_equal(result.selected, np.sort(by_score[5:10]))
    assert result.selection.estimated_cost == 5.0 and result.selection.stopped_by == "budget"


def test_each_strategy_maps_to_the_pipelines_selection_policy():
    from ceal_pipeline.validation.detection.protocol import fine_tune_epochs, selection_policy

    config = DetectionProtocolConfig(diversity_weight=0.3, class_balance_strength=2.0, price_per_frame=1.0,
                                     price_per_box=0.2)
    both = selection_policy(selection_choice("ceal_heatmap_entropy_5pct_balanced_diverse"), config, 50.0)
    assert (both.method, both.diversity_weight, both.class_balance_strength) == ("class_balance_diversity", 0.3, 2.0)
    assert both.budget.amount is None and both.budget.price_per_cuboid == 0.2
    money = selection_policy(selection_choice("ceal_heatmap_entropy_5pct_balanced_diverse_budget"), config, 50.0)
    assert money.budget.amount == 50.0
    assert selection_policy(selection_choice("heatmap_entropy"), config, 50.0).method == "topk"
    # A step budget: 40 steps of batch 4 are 2 epochs of 80 frames, 1 epoch of 200.
    steps = DetectionProtocolConfig(fine_tune_steps=40)
    assert fine_tune_epochs(steps, 80, 4) == 2 and fine_tune_epochs(steps, 200, 4) == 1
    assert fine_tune_epochs(DetectionProtocolConfig(fine_tune_epochs=3), 80, 4) == 3


def test_oversampled_rounds_count_steps_over_the_expanded_epoch():
    from ceal_pipeline.validation.detection.protocol import fine_tune_epochs, new_frame_repeats

    steps = DetectionProtocolConfig(fine_tune_steps=50)
    oversampled = DetectionProtocolConfig(fine_tune_steps=50, new_frame_repeats=3)
    # 60 labeled, 20 of them new: 60 frames (15 steps) an epoch -> 4 epochs; 100 (25 steps) -> 2.
    assert fine_tune_epochs(steps, 60, 4, new_frames=20) == fine_tune_epochs(steps, 60, 4) == 4
    assert fine_tune_epochs(oversampled, 60, 4, new_frames=20) == 2
    assert fine_tune_epochs(oversampled, 60, 4) == 4  # no new frames: nothing to expand
    assert fine_tune_epochs(DetectionProtocolConfig(new_frame_repeats=3), 60, 4, new_frames=20) == 2  # epochs
    with pytest.raises(ValueError, match="new_frames"):
        fine_tune_epochs(oversampled, 60, 4, new_frames=61)
    labeled, previous = np.array([2, 5, 7, 9, 11]), np.array([2, 7, 11])
    assert new_frame_repeats(oversampled, labeled, previous) == [1, 3, 1, 3, 1]
    assert new_frame_repeats(steps, labeled, previous) is None  # 1: train as without oversampling
    for bad in (0, -1):
        with pytest.raises(ValueError, match=r"new_frame_repeats must be an integer >= 1 \(1 = no oversampling\)"):
            DetectionProtocolConfig(new_frame_repeats=bad)


def test_oversampling_at_its_default_keeps_every_published_protocol_key():
    # The keys stored runs are filed under, from before new_frame_repeats existed.
    published = {("quick", 0): "5423e8118f39", ("cpu", 0): "8670b96b0b71", ("cpu", 1): "a69d1304f004",
                 ("gpu", 0): "19bcfeb19155"}
    for (name, generator_seed), key in published.items():
        protocol = get_detection_preset(name, {"generator_seed": generator_seed}).protocol
        assert protocol.new_frame_repeats == 1 and protocol.key() == key, name
        assert get_detection_preset(name, {"generator_seed": generator_seed, "new_frame_repeats": 1}
                                    ).protocol.key() == key
        assert get_detection_preset(name, {"generator_seed": generator_seed, "new_frame_repeats": 3}
                                    ).protocol.key() not in (key, *published.values())


def test_exact_steps_trains_fine_tune_steps_exactly_instead_of_whole_epochs():
    from ceal_pipeline.validation.detection.protocol import fine_tune_budget

    rounded = DetectionProtocolConfig(fine_tune_steps=50)
    exact = DetectionProtocolConfig(fine_tune_steps=50, exact_steps=True)
    # 140 labeled at batch 4: 35 steps an epoch, so 50 steps round up to 2 epochs (70 steps).
    assert fine_tune_budget(rounded, 140, 4) == {"epochs": 2}
    assert fine_tune_budget(exact, 140, 4) == {"max_steps": 50}
    # Oversampling changes the epoch (40 new frames 3x: 220 frames, 55 steps), not the exact budget.
    assert fine_tune_budget(DetectionProtocolConfig(fine_tune_steps=50, new_frame_repeats=3), 140, 4, 40) == \
        {"epochs": 1}
    assert fine_tune_budget(DetectionProtocolConfig(fine_tune_steps=50, new_frame_repeats=3, exact_steps=True),
                            140, 4, 40) == {"max_steps": 50}
    assert fine_tune_budget(DetectionProtocolConfig(fine_tune_epochs=3), 140, 4) == {"epochs": 3}
    with pytest.raises(ValueError, match=r"exact_steps .* needs fine_tune_steps"):
        DetectionProtocolConfig(exact_steps=True)  # no steps to train exactly
    with pytest.raises(ValueError, match=r"exact_steps must be True or False"):
        DetectionProtocolConfig(fine_tune_steps=50, exact_steps=1)


def test_exact_steps_at_its_default_keeps_every_published_protocol_key():
    # The keys stored runs are filed under, from before exact_steps existed.
    published = {("quick", 0): "5423e8118f39", ("cpu", 0): "8670b96b0b71", ("cpu", 1): "a69d1304f004",
                 ("gpu", 0): "19bcfeb19155"}
    for (name, generator_seed), key in published.items():
        protocol = get_detection_preset(name, {"generator_seed": generator_seed}).protocol
        assert protocol.exact_steps is False and protocol.key() == key, name
        assert get_detection_preset(name, {"generator_seed": generator_seed, "exact_steps": False}
                                    ).protocol.key() == key
        exact = get_detection_preset(name, {"generator_seed": generator_seed, "exact_steps": True}).protocol.key()
        assert exact not in (key, *published.values())
        assert get_detection_preset(name, {"generator_seed": generator_seed, "exact_steps": True,
                                           "new_frame_repeats": 3}).protocol.key() not in (key, exact)


def test_the_budget_check_fails_before_training_when_a_candidate_pool_cannot_fill_the_budget():
    config = DetectionProtocolConfig(initial_labeled=10, acquire_per_round=5, rounds=2)
    strategies = [parse_detection_strategy("ceal_localization_entropy_2.5pct")]
    config.check_budget(strategies, pool_frames=400)  # 2.5 % of 385 unlabeled = 10 >= 5
    with pytest.raises(ValueError, match="fewer than acquire_per_round=5"):
        config.check_budget(strategies, pool_frames=150)
    with pytest.raises(ValueError, match="exceed the pool"):
        config.check_budget(strategies, pool_frames=15)


def test_presets_fit_their_budgets_and_gpu_is_the_cpu_protocol_at_ten_times_the_scale():
    for name in DETECTION_PRESET_NAMES:
        preset = get_detection_preset(name)
        protocol = preset.protocol
        assert preset.strategies == tuple(selection_stage_strategies())
        pool = int(round(protocol.frames * 0.8))  # the generator's train split
        protocol.check_budget([parse_detection_strategy(s) for s in preset.strategies], pool)
    cpu, gpu = get_detection_preset("cpu").protocol, get_detection_preset("gpu").protocol
    # Issue 18: at least 6 rounds (so pruning can act) and 5 paired seeds.
    assert cpu.rounds >= 6 and get_detection_preset("cpu").repeats >= 5
    for field in ("frames", "held_out_frames", "initial_labeled", "acquire_per_round"):
        assert getattr(gpu, field) == 10 * getattr(cpu, field)
    assert (gpu.rounds, gpu.epochs, gpu.fine_tune_epochs, gpu.mc_samples) == (
        cpu.rounds, cpu.epochs, cpu.fine_tune_epochs, cpu.mc_samples)
    assert get_detection_preset("cpu", {"generator_seed": 1}).protocol.key() != cpu.key()
    assert get_detection_preset("cpu", {"rounds": 2}).protocol.key() != cpu.key()
    with pytest.raises(ValueError, match="unknown detection protocol settings"):
        get_detection_preset("cpu", {"width": 0.5})
