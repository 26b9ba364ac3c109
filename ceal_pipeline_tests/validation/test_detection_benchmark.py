"""Specification of the detection benchmark end to end: `ceal bench detection` with the
real tiny detector on a few dozen synthetic frames, one epoch, two MC passes (plumbing,
not the claim; about a minute on 2 cores), and the Dagster asset's wiring."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ceal_pipeline.cli import benchmark_detection, main
from ceal_pipeline.core.sampling import pool_size
from ceal_pipeline.core import round as core_round
from ceal_pipeline.core import round_driver
from ceal_pipeline.validation.detection.presets import DETECTION_PRESET_NAMES, get_detection_preset
from ceal_pipeline.validation.results import BenchmarkResults

#: Where the benchmarks' round looks each core.round step up (the spies replace them there).
ROUND_STEPS = {"draw_candidate_pool": round_driver, "selectable": core_round}

STRATEGIES = ("random,heatmap_entropy,ceal_localization_entropy_10pct,ceal_localization_entropy_10pct_pruned,"
              "ceal_heatmap_entropy_10pct_balanced_budget,ceal_localization_and_heatmap_ranks_10pct")
#: Shrinks the quick preset to 40 frames (about 32 in the pool), 6 held-out one-frame sequences,
#: 2 rounds of 1 frame (the money budget: 20 per round), one step a round.
TINY = ["--quick", "--frames", "40", "--held-out-frames", "6", "--initial-labeled", "4", "--acquire-per-round", "1",
        "--rounds", "2", "--epochs", "1", "--fine-tune-steps", "1", "--mc-samples", "2", "--num-workers", "0",
        "--threads", "1", "--budget-per-round", "20", "--repeats", "1", "--strategies", STRATEGIES]


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    """One run of the CLI, with spies on core.round and on MC-Dropout scoring."""
    from ceal_pipeline.detector import scoring

    home = tmp_path_factory.mktemp("home")
    calls = {"draw_candidate_pool": 0, "selectable": 0, "select_batch": 0, "scored": []}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CEAL_HOME", str(home))
        for name in ("draw_candidate_pool", "selectable"):
            def spy(*args, _original=getattr(ROUND_STEPS[name], name), _name=name, **kwargs):
                calls[_name] += 1
                return _original(*args, **kwargs)

            patch.setattr(ROUND_STEPS[name], name, spy)

        def select_spy(*args, _original=core_round.select_batch, **kwargs):
            calls["select_batch"] += 1
            return _original(*args, **kwargs)

        patch.setattr(core_round, "select_batch", select_spy)
        original_score = scoring.score_frames

        def score_spy(model, frames, *args, **kwargs):
            calls["scored"].append(([f.frame_id for f in frames], kwargs.get("extra_acquisition_fns", ())))
            return original_score(model, frames, *args, **kwargs)

        patch.setattr(scoring, "score_frames", score_spy)
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["bench", "detection", *TINY, "--json"]) == 0
    lines = out.getvalue().strip().splitlines()
    return home, lines, calls


def test_the_cli_prints_one_json_line_with_every_strategy_and_the_score_error_figures(tiny_benchmark):
    home, lines, _ = tiny_benchmark
    assert len(lines) == 1, "--json prints exactly one line"
    summary = json.loads(lines[0])
    assert summary["dataset"] == "detection" and summary["preset"] == "quick" and summary["new_seeds"] == [0]
    assert list(summary["strategies"]) == STRATEGIES.split(",")
    for name, result in summary["strategies"].items():
        assert len(result["map_per_round"]) == 3
        if not name.endswith("_budget"):  # a money budget buys as many frames as the money pays for
            assert result["labeled_per_round"] == [4, 5, 6]
        # The headline: the area under the learning curve and the paired difference to random.
        assert 0.0 <= result["alc"] <= 1.0 and result["paired_vs_random"]["metric"] == "alc"
        assert result["paired_vs_random"]["seeds"] == [0] and result["paired_vs_random"]["ci95"] is None
        assert set(result["paired_vs_random"]) >= {"mean", "ci95", "final_map", "alc_cost", "alc_boxes"}
        assert result["seeds"] == [0] and 0.0 <= result["final_map"] <= 1.0
        assert set(result["per_class_ap"]) == {"car", "truck", "pedestrian", "cyclist"}
        assert sum(result["bought_shares"][k] for k in ("normal",)) <= 1.0
    strategies = summary["strategies"]
    assert strategies["random"]["paired_vs_random"]["mean"] == 0.0
    assert strategies["random"]["forward_passes"] == 0 and strategies["random"]["training_s"] > 0
    # Round 1 of CEAL is the full-pool backfill of the u unlabeled frames; round 2 scores
    # 10 % of the u - 1 left, where full-pool acquisition scores all of them.
    unlabeled = (strategies["heatmap_entropy"]["frames_scored"] + 1) // 2
    assert strategies["ceal_localization_entropy_10pct"]["frames_scored"] == unlabeled + pool_size(unlabeled - 1, 0.1)
    assert strategies["heatmap_entropy"]["forward_passes"] == 2 * (2 * unlabeled - 1)
    assert set(summary["score_error_spearman"]) == {"localization_entropy", "localization_and_class_entropy",
                                                    "heatmap_entropy", "localization_and_heatmap_entropy",
                                                    "localization_and_heatmap_ranks"}
    assert "ceal_localization_entropy_10pct_pruned" in summary["pruning"]
    stored = BenchmarkResults(home / "validation").runs("detection", summary["protocol_key"])
    assert sorted(r["strategy"] for r in stored) == sorted(STRATEGIES.split(","))
    assert all(r["seeds"]["run_seed"] == 0 and len(r["seeds"]["training"]) == 3 for r in stored)
    for run in stored:  # labeled boxes and cost grow with every purchase; the metric's other views are kept
        assert run["boxes_per_round"][0] < run["boxes_per_round"][-1]
        assert run["cost_per_round"][0] < run["cost_per_round"][-1]
        assert len(run["map_unclipped_per_round"]) == len(run["car_ap_per_round"]) == 3
        assert all(u >= c - 1e-9 for u, c in zip(run["map_unclipped_per_round"], run["map_per_round"]))
    budget = next(r for r in stored if r["strategy"].endswith("_budget"))
    assert [s["policy"]["method"] for s in budget["selection_per_round"]] == ["class_balance"] * 2
    assert all(s["policy"]["budget"]["amount"] > 0 for s in budget["selection_per_round"])


def test_every_scoring_strategy_is_driven_by_core_round(tiny_benchmark):
    _, _, calls = tiny_benchmark
    # Four CEAL strategies x 2 rounds draw through core.round (backfill included); the five
    # scoring strategies x 2 rounds select through core.round.selectable and core.selection.
    assert calls["draw_candidate_pool"] == 8 and calls["selectable"] == 10
    assert calls["select_batch"] == 10


def test_the_score_error_correlation_is_computed_on_held_out_frames_only(tiny_benchmark):
    home, lines, calls = tiny_benchmark
    all_functions = [ids for ids, extra in calls["scored"] if len(extra) == 4]
    assert len(all_functions) == 1, "one set of MC passes scores the held-out frames with every function"
    from ceal_pipeline.validation.detection.data import load_detection_data
    from ceal_pipeline.validation.detection.presets import get_detection_preset

    protocol = get_detection_preset("quick", {"frames": 40, "held_out_frames": 6}).protocol
    data = load_detection_data(home / "cache" / "detection", frames=protocol.frames,
                               frames_per_sequence=protocol.frames_per_sequence,
                               generator_seed=protocol.generator_seed, held_out_frames=protocol.held_out_frames)
    assert all_functions[0] == [f.frame_id for f in data.held_out]
    assert not set(all_functions[0]) & {f.frame_id for f in data.pool}
    assert all(f.split == "val" for f in data.held_out)


def test_a_rerun_adds_no_run_for_a_stored_seed_and_summary_only_reads_the_store(tiny_benchmark, monkeypatch, capsys):
    home, lines, _ = tiny_benchmark
    monkeypatch.setenv("CEAL_HOME", str(home))
    assert main(["bench", "detection", *TINY, "--json", "--summary-only"]) == 0
    again = json.loads(capsys.readouterr().out.strip())
    first = json.loads(lines[0])
    assert again["strategies"] == first["strategies"] and again["new_seeds"] == []
    assert main(["bench", "detection", *TINY, "--json", "--seeds", "0"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["strategies"]["random"]["seeds"] == [0]


def test_new_frame_repeats_oversamples_only_the_frames_bought_in_the_round(tmp_path, monkeypatch, capsys):
    from ceal_pipeline.detector import training

    trainings = []
    original = training.train_detector

    def spy(frames, *args, **kwargs):
        trainings.append(([f.frame_id for f in frames], kwargs["epochs"], kwargs.get("repeats")))
        return original(frames, *args, **kwargs)

    monkeypatch.setattr(training, "train_detector", spy)
    monkeypatch.setenv("CEAL_HOME", str(tmp_path))
    tiny = TINY[:TINY.index("--acquire-per-round")] + ["--acquire-per-round", "2"] + \
        TINY[TINY.index("--rounds"):TINY.index("--fine-tune-steps")] + ["--fine-tune-steps", "3"] + \
        TINY[TINY.index("--mc-samples"):TINY.index("--budget-per-round")] + ["--repeats", "1", "--strategies", "random"]
    assert main(["bench", "detection", *tiny, "--new-frame-repeats", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    assert summary["protocol_key"] == get_detection_preset("quick", {
        "frames": 40, "held_out_frames": 6, "initial_labeled": 4, "acquire_per_round": 2, "rounds": 2, "epochs": 1,
        "fine_tune_steps": 3, "mc_samples": 2, "new_frame_repeats": 3}).protocol.key()
    (seed_ids, _, seed_repeats), *later = trainings
    assert seed_repeats is None and len(later) == 2  # round 0 trains from scratch, once each
    previous = seed_ids
    for ids, epochs, repeats in later:
        assert len(ids) == len(previous) + 2
        assert repeats == [1 if i in previous else 3 for i in ids] and repeats.count(3) == 2
        # 3 steps at batch 4 are one expanded epoch (6 + 2 x 2 and 8 + 2 x 2 frames); unexpanded, two.
        assert epochs == 1
        previous = ids


def test_exact_steps_trains_each_warm_started_round_exactly_fine_tune_steps(tmp_path, monkeypatch, capsys):
    from ceal_pipeline.detector import training
    from ceal_pipeline.detector.checkpoints import read_checkpoint

    trainings = []
    original = training.train_detector

    def spy(frames, *args, **kwargs):
        checkpoint = original(frames, *args, **kwargs)
        state = read_checkpoint(checkpoint.path)
        trainings.append((len(frames), kwargs.get("epochs"), kwargs.get("max_steps"), state["global_step"],
                          state["epoch"]))
        return checkpoint

    monkeypatch.setattr(training, "train_detector", spy)
    monkeypatch.setenv("CEAL_HOME", str(tmp_path))
    tiny = TINY[:TINY.index("--acquire-per-round")] + ["--acquire-per-round", "2"] + \
        TINY[TINY.index("--rounds"):TINY.index("--fine-tune-steps")] + ["--fine-tune-steps", "4"] + \
        TINY[TINY.index("--mc-samples"):TINY.index("--budget-per-round")] + ["--repeats", "1", "--strategies", "random"]
    assert main(["bench", "detection", *tiny, "--exact-steps", "--new-frame-repeats", "3", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip())
    overrides = {"frames": 40, "held_out_frames": 6, "initial_labeled": 4, "acquire_per_round": 2, "rounds": 2,
                 "epochs": 1, "fine_tune_steps": 4, "mc_samples": 2, "new_frame_repeats": 3}
    assert summary["protocol_key"] == get_detection_preset("quick", {**overrides, "exact_steps": True}).protocol.key()
    assert summary["protocol_key"] != get_detection_preset("quick", overrides).protocol.key()
    # Round 0 from scratch in epochs (4 frames at batch 4: 1 step). Later rounds exactly 4 steps: an
    # expanded pass of 6 + 2 x 2 or 8 + 2 x 2 frames is 3 steps, so 1 whole epoch and 1 step of a second
    # (rounded up to whole epochs, 6 steps).
    assert trainings[0] == (4, 1, None, 1, 1)
    assert [t[1:] for t in trainings[1:]] == [(None, 4, 4, 2), (None, 4, 4, 2)]
    assert main(["bench", "detection", "--quick", "--exact-steps", "--fine-tune-steps", "0", "--json"]) == 2
    assert "fine_tune_steps must be >= 1" in capsys.readouterr().err


def test_the_cli_presets_are_the_benchmark_presets_and_a_bad_strategy_exits_with_the_reason(capsys):
    assert benchmark_detection.PRESETS == DETECTION_PRESET_NAMES
    assert main(["bench", "detection", "--quick", "--strategies", "entropy", "--json"]) == 2
    assert "unknown detection strategy 'entropy'" in capsys.readouterr().err


def test_the_detection_benchmark_asset_has_a_typed_preset_and_describes_the_results(tmp_path, monkeypatch):
    import dagster as dg
    from pydantic import ValidationError

    from ceal_pipeline.defs.validation import detection_benchmark
    from ceal_pipeline.defs.validation.config import DetectionBenchmarkConfig

    assert detection_benchmark.group_names_by_key[dg.AssetKey("detection_benchmark")] == "validation"
    assert DetectionBenchmarkConfig().preset == "quick"
    with pytest.raises(ValidationError):
        DetectionBenchmarkConfig(preset="paper")
    assert DetectionBenchmarkConfig(rounds=2).overrides() == {"rounds": 2}

    monkeypatch.setenv("CEAL_HOME", str(tmp_path / "home"))
    config = {"strategies": ["random", "ceal_localization_entropy_10pct"], "frames": 40, "held_out_frames": 4,
              "initial_labeled": 4, "rounds": 1, "acquire_per_round": 1, "epochs": 1, "fine_tune_steps": 1,
              "mc_samples": 2, "threads": 1, "num_workers": 0, "new_seeds": 1}
    result = dg.materialize([detection_benchmark], run_config={"ops": {"detection_benchmark": {"config": config}}})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("detection_benchmark")
    metadata = materialization.metadata
    assert metadata["map_per_round_plot"].value.startswith("![detection (quick)")
    for table in ("paired_vs_random", "results", "map_per_round", "per_class_ap", "subpopulations_bought",
                  "score_error_spearman", "pruning"):
        assert metadata[table].value.startswith("| "), table
    summary = metadata["summary"].value
    assert set(summary["strategies"]) == {"random", "ceal_localization_entropy_10pct"}
    assert np.isfinite(metadata["final_map/random"].value)
    assert summary["strategies"]["random"]["paired_vs_random"]["mean"] == 0.0
    assert 0.0 <= metadata["alc/ceal_localization_entropy_10pct"].value <= 1.0
    assert metadata["seeds_stored"].value == 1


def test_round0s_shared_passes_rank_a_rank_combination_among_the_frames_a_strategy_scores():
    from types import SimpleNamespace

    from ceal_pipeline.core.ranks import rank_normalised_combination
    from ceal_pipeline.validation.detection.protocol import _Scored

    terms = {"localization": np.array([9.0, 0.0, 7.0, 21.0]), "heatmap": np.array([0.3, 0.4, 0.35, 0.31])}
    weights = {"localization": 1.0, "heatmap": 1.0}
    scored = SimpleNamespace(
        scores_by_fn={"localization_and_heatmap_ranks": rank_normalised_combination(terms, weights)},
        terms_by_fn={"localization_and_heatmap_ranks": terms},
        term_weights_by_fn={"localization_and_heatmap_ranks": weights},
        class_counts=np.zeros((4, 2)), embeddings=None)
    shared = _Scored()
    shared.add(np.array([10, 11, 12, 13]), scored, n_classes=2, min_confidence=0.3)
    # Every frame: the shared values; a subset: ranked among itself (between frames 10 and 12, frame 10
    # leads on localization and frame 12 on the heatmap: a tie, whatever frames 11 and 13 scored).
    np.testing.assert_allclose(shared.values("localization_and_heatmap_ranks", np.array([10, 11, 12, 13])),
                               scored.scores_by_fn["localization_and_heatmap_ranks"])
    np.testing.assert_allclose(shared.values("localization_and_heatmap_ranks", np.array([10, 12])), [1.0, 1.0])
