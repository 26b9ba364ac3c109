"""Specification of the benchmark shell: `ceal bench mnist`, the results store and
the Dagster assets, end to end on a tiny synthetic MNIST."""

from __future__ import annotations

import base64
import json

import pytest

from ceal_pipeline.cli import main
from ceal_pipeline.validation.presets import PRESET_NAMES, get_preset
from ceal_pipeline.validation.report import accuracy_plot_png, compute_ratios, results_table_markdown
from ceal_pipeline.validation.results import BenchmarkResults, summarise

#: Shrinks the quick preset to the 1,200-image synthetic MNIST: still every strategy.
TINY_FLAGS = ["--pool-size", "600", "--test-size", "200", "--validation-size", "100", "--rounds", "1",
              "--acquire-per-round", "30", "--epochs", "1", "--mc-samples", "3", "--width", "0.25", "--threads", "1"]


def run_cli(capsys, *args: str) -> dict:
    assert main(["bench", *args]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one line"
    return json.loads(lines[0])


@pytest.fixture
def ceal_env(tmp_path, tiny_mnist_root, monkeypatch):
    monkeypatch.setenv("CEAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CEAL_DATASETS", str(tiny_mnist_root))
    return tmp_path / "home"


def test_quick_preset_runs_every_strategy_end_to_end_and_prints_the_summary_line(ceal_env, capsys):
    summary = run_cli(capsys, "mnist", "--quick", "--json", *TINY_FLAGS)
    quick = get_preset("mnist", "quick")
    assert summary["dataset"] == "mnist" and set(summary["strategies"]) == set(quick.strategies)
    for name, result in summary["strategies"].items():
        assert {"final_accuracy", "accuracy_per_round", "seeds", "forward_passes", "acquisition_s",
                "training_s"} <= set(result)
        assert len(result["accuracy_per_round"]) == 2 and result["seeds"] == [0]
        assert result["final_accuracy"] == result["accuracy_per_round"][-1]
    strategies = summary["strategies"]
    assert strategies["random"]["forward_passes"] == 0
    # Round 1 of CEAL is the paper's full-pool backfill, so with one round it costs what full-pool costs.
    assert strategies["ceal_entropy_250"]["forward_passes"] == strategies["entropy"]["forward_passes"] > 0
    assert (ceal_env / "validation" / "mnist.jsonl").is_file()


def test_reruns_add_seeds_instead_of_overwriting(ceal_env, capsys):
    flags = ["mnist", "--quick", "--json", "--strategies", "random,ceal_entropy_100", "--repeats", "1", *TINY_FLAGS]
    first = run_cli(capsys, *flags)
    second = run_cli(capsys, *flags)
    assert first["new_seeds"] == [0] and second["new_seeds"] == [1]
    assert second["strategies"]["random"]["seeds"] == [0, 1]
    stored = BenchmarkResults(ceal_env / "validation").runs("mnist", first["protocol_key"])
    assert sorted((r["strategy"], r["run_seed"]) for r in stored) == [
        ("ceal_entropy_100", 0), ("ceal_entropy_100", 1), ("random", 0), ("random", 1)]
    only = run_cli(capsys, *flags, "--summary-only")
    assert only["strategies"]["random"]["seeds"] == [0, 1] and only["new_seeds"] == []


def test_a_stored_seed_is_not_rerun_and_a_changed_protocol_is_kept_apart(ceal_env, capsys):
    flags = ["mnist", "--quick", "--json", "--strategies", "random", *TINY_FLAGS]
    run_cli(capsys, *flags, "--seeds", "5")
    again = run_cli(capsys, *flags, "--seeds", "5")
    assert again["strategies"]["random"]["seeds"] == [5]
    other = run_cli(capsys, *flags, "--seeds", "5", "--temperature", "0.5")
    assert other["protocol_key"] != again["protocol_key"] and other["strategies"]["random"]["seeds"] == [5]


def test_missing_data_makes_the_cli_exit_with_the_loader_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CEAL_HOME", str(tmp_path / "home"))
    assert main(["bench", "mnist", "--quick", "--json", "--data-root", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "ceal bench mnist:" in err and "MNIST not found" in err


def test_the_old_ceal_benchmark_spelling_runs_the_same_command_and_says_where_it_moved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CEAL_HOME", str(tmp_path / "home"))
    assert main(["benchmark", "cifar10", "--quick", "--json", "--data-root", str(tmp_path / "empty")]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # --json output stays clean: the notice goes to stderr
    assert "moved to `ceal bench cifar10`" in err and "CIFAR-10 not found" in err


def _run(strategy: str, seed: int, accuracy: list[float], forward_passes: int) -> dict:
    return {"dataset": "mnist", "protocol_key": "k", "strategy": strategy, "run_seed": seed,
            "accuracy_per_round": accuracy, "labeled_per_round": [10, 20], "forward_passes": forward_passes,
            "frames_scored": forward_passes // 10, "acquisition_s": 1.0, "training_s": 2.0}


def test_results_store_keeps_the_latest_line_per_seed_and_survives_a_torn_last_line(tmp_path):
    store = BenchmarkResults(tmp_path)
    store.append(_run("entropy", 0, [0.5, 0.6], 1000))
    store.append(_run("entropy", 0, [0.5, 0.7], 1000))
    store.append(_run("entropy", 1, [0.5, 0.9], 1000))
    with open(store.path("mnist"), "a") as f:
        f.write('{"dataset": "mnist", "protoc')  # a crash mid-write
    runs = store.runs("mnist", "k")
    assert sorted(r["accuracy_per_round"][-1] for r in runs) == [0.7, 0.9]
    summary = summarise(runs)["entropy"]
    assert summary.final_accuracy == pytest.approx(0.8) and summary.final_accuracy_std == pytest.approx(0.1414, abs=1e-4)
    assert store.next_seeds("mnist", "k", ["entropy"], 2) == [2, 3]


def test_report_states_compute_relative_to_the_full_pool_baseline():
    summaries = summarise([_run("entropy", 0, [0.5, 0.6], 1000), _run("ceal_entropy_50", 0, [0.5, 0.62], 250),
                           _run("random", 0, [0.5, 0.55], 0)])
    assert compute_ratios(summaries) == {"entropy": 1.0, "ceal_entropy_50": 0.25}
    table = results_table_markdown(summaries)
    assert "| ceal_entropy_50 | 1 | 62.00 ± 0.00 |" in table and "| 0.250 |" in table
    assert accuracy_plot_png(summaries, "test").startswith(b"\x89PNG")


def test_presets_exist_for_both_datasets_and_keep_the_paper_ratios():
    for dataset in ("mnist", "cifar10"):
        for name in PRESET_NAMES:
            preset = get_preset(dataset, name)
            assert preset.protocol.dataset == dataset and preset.strategies[0] == "random"
    paper = get_preset("mnist", "paper", {"initial_fraction": 0.05})
    assert (paper.protocol.rounds, paper.protocol.acquire_per_round, paper.protocol.trainings_per_round) == (10, 600, 3)
    assert get_preset("cifar10", "paper", {"initial_fraction": 0.25}).protocol.acquire_per_round == 1250
    cpu = get_preset("mnist", "cpu").protocol
    assert cpu.rounds * cpu.acquire_per_round == cpu.pool_size // 10  # 10% of the pool, as in the paper
    on_a_cpu = get_preset("mnist", "paper-cpu", {"initial_fraction": 0.05})
    assert (on_a_cpu.protocol.rounds, on_a_cpu.protocol.acquire_per_round, on_a_cpu.protocol.pool_size) == (10, 600, None)
    assert {"ceal_entropy_2500", "ceal_variation_ratios_10000"} <= set(on_a_cpu.strategies)
    assert on_a_cpu.protocol.key() != paper.protocol.key()
    with pytest.raises(ValueError, match="unknown protocol settings"):
        get_preset("mnist", "quick", {"epoch": 3})


def test_dagster_assets_materialize_and_describe_the_results(ceal_env):
    dg = pytest.importorskip("dagster")
    from ceal_pipeline.defs.validation import validation_assets, validation_defs

    assert [a.key.to_user_string() for a in validation_assets] == ["mnist_benchmark", "cifar10_benchmark",
                                                                   "detection_benchmark"]
    assert {a.group_names_by_key[a.key] for a in validation_assets} == {"validation"}
    assert validation_defs.get_assets_def("mnist_benchmark") is validation_assets[0]
    config = {"strategies": ["random", "entropy", "ceal_entropy_100"], "pool_size": 600, "rounds": 1,
              "acquire_per_round": 30, "epochs": 1, "mc_samples": 3, "threads": 1}
    result = dg.materialize([validation_assets[0]],
                            run_config={"ops": {"mnist_benchmark": {"config": config}}})
    assert result.success
    (materialization,) = result.asset_materializations_for_node("mnist_benchmark")
    metadata = materialization.metadata
    plot = metadata["accuracy_per_round_plot"].value
    assert plot.startswith("![") and base64.b64decode(plot.split("base64,")[1].rstrip(")")).startswith(b"\x89PNG")
    assert "| entropy | 1 |" in metadata["results"].value
    assert metadata["compute_vs_full_pool/entropy"].value == 1.0
    assert metadata["seeds_stored"].value == 1


def test_the_cli_offers_every_preset():
    from ceal_pipeline.cli.benchmark import PRESETS

    assert PRESETS == PRESET_NAMES
