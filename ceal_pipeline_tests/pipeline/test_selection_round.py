"""Spec: a round configured with a selection method and a money budget buys by them, end to end.

The round records ``round.selection`` and the price list when it opens;
``selected_batch`` spends at most the budget, says which signal decided, and
records the estimated cost in the ledger; the export's manifest carries it; the
vendor's delivery is priced by what it actually held.
"""

from __future__ import annotations

import json

import dagster as dg

from ceal_pipeline.cli.demo_vendor import simulate_vendor
from ceal_pipeline.core.selection import DECISIVE_SIGNALS
from ceal_pipeline.defs.acquisition.config import CandidatePoolConfig, SelectionConfig, run_configs_for
from ceal_pipeline.defs.acquisition.round_runner import run_acquisition_round
from ceal_pipeline.export import read_vendor_export
from ceal_pipeline_tests.history.conftest import recorded_round

BUDGET, PER_FRAME, PER_CUBOID, CAP = 20.0, 2.0, 0.5, 3  # 4 train sequences x 3 > 20 / 2 frames


def _metadata(instance, asset: str) -> dict:
    record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def test_a_class_balanced_diverse_round_under_a_money_budget_runs_through_the_assets(defs, instance, resources):
    configs = {
        "candidate_pool": CandidatePoolConfig(
            shard_size=24, per_sequence_cap=CAP,
            selection={"method": "class_balance_diversity", "diversity_weight": 0.5},
            budget={"amount": BUDGET, "price_per_frame": PER_FRAME, "price_per_cuboid": PER_CUBOID},
        ),
        "selected_batch": SelectionConfig(),
    }
    first = run_acquisition_round(defs, instance, configs)

    history = resources["history"].open()
    recorded = history.round_parameters(0)
    assert (recorded["selection"]["method"], recorded["budget"]["amount"]) == ("class_balance_diversity", BUDGET)
    chosen = [str(f) for f in history.selection(0).frame_ids]
    selected = _metadata(instance, "selected_batch")
    assert selected["selection_method"] == "class_balance_diversity"
    assert selected["decided_by"] in DECISIVE_SIGNALS
    assert sum(selected["decided_by_counts"].values()) == len(chosen) >= 1
    assert selected["selection"]["stopped_by"] == "budget" and selected["selection"]["frames_without_embedding"] == 0
    cost = selected["estimated_label_cost"]
    assert PER_FRAME * len(chosen) <= cost <= BUDGET
    sequences = resources["frame_source"].catalog().sequence_ids(chosen).tolist()
    assert max(sequences.count(s) for s in set(sequences)) <= CAP
    ledger = recorded_round(history, 0)["ledger"]
    assert ledger["estimated_label_cost"] == cost
    export = read_vendor_export(first.export_folder)
    assert list(export.frame_ids) == chosen
    manifest = json.loads(export.manifest_path.read_text())
    assert manifest["estimated_label_cost"]["total"] == cost
    assert manifest["estimated_label_cost"]["price_per_cuboid"] == PER_CUBOID

    simulate_vendor(resources["exporter"].outbox, resources["exporter"].inbox,
                    resources["frame_source"].catalog().records)
    run_acquisition_round(defs, instance, {"candidate_pool": CandidatePoolConfig(shard_size=24, pool_count=20, k=6)})
    delivered = resources["history"].open().deliveries()
    frames, boxes = sum(d["n_frames"] for d in delivered), sum(d["n_boxes"] for d in delivered)
    assert frames == len(chosen)
    assert _metadata(instance, "labeled_set")["delivery_cost"] == {"vendor r0": PER_FRAME * frames + PER_CUBOID * boxes}


def test_round_selection_and_budget_in_ceal_yaml_become_the_rounds_parameters(tmp_path):
    from ceal_pipeline.configuration.loading import load_project_config

    path = tmp_path / "ceal.yaml"
    path.write_text("preset: cpu-small\nround:\n  selection: {method: diversity, diversity_weight: 0.3}\n"
                    "  budget: {amount: 500, price_per_frame: 4.0, price_per_cuboid: 0.2}\n")
    pool = run_configs_for(load_project_config(path, environ={}))["candidate_pool"]
    selection, budget = pool.selection, pool.budget
    assert (selection.method, selection.diversity_weight, selection.class_balance_strength) == ("diversity", 0.3, 1.0)
    assert (budget.amount, budget.price_per_frame, budget.price_per_cuboid) == (500.0, 4.0, 0.2)
