"""``mnist_benchmark``, ``cifar10_benchmark`` and ``detection_benchmark``: CEAL against full-pool acquisition.

Each materialization runs new seeds of a preset (see
:mod:`ceal_pipeline.validation.presets`), appends every finished
(strategy, seed) run to ``$CEAL_HOME/validation/<dataset>.jsonl`` and reports
the summary over *all* stored seeds of that protocol: the accuracy-per-round
plot, mean ± std per strategy and each strategy's acquisition compute. Torch
is imported inside the asset body, never at code-location load.

``detection_benchmark`` does the same for the 3D detector on synthetic driving
data (:mod:`ceal_pipeline.validation.detection`), into
``$CEAL_HOME/validation/detection.jsonl``, and adds per-class AP, the
sub-populations each strategy buys, pruning's effect and the score-error
correlation of every acquisition function.
"""

# No ``from __future__ import annotations`` here: Dagster reads the asset
# function's ``config: BenchmarkConfig`` annotation at definition time and
# cannot resolve it from a string.
import json
from dataclasses import asdict

import dagster as dg

from ceal_pipeline.configuration import storage_home
from ceal_pipeline.defs.validation.config import BenchmarkConfig, DetectionBenchmarkConfig


def materialize_benchmark(context: dg.AssetExecutionContext, dataset: str, config: BenchmarkConfig) -> dg.MaterializeResult:
    """Run the benchmark for ``dataset`` as configured and describe the stored results."""
    import torch

    from ceal_pipeline.validation.benchmark import run_benchmark
    from ceal_pipeline.validation.datasets import load_dataset
    from ceal_pipeline.validation.presets import get_preset
    from ceal_pipeline.validation.report import (
        accuracy_per_round_markdown,
        accuracy_plot_png,
        compute_ratios,
        png_markdown,
        results_table_markdown,
    )
    from ceal_pipeline.validation.results import BenchmarkResults

    preset = get_preset(dataset, config.preset, config.overrides(), strategies=config.strategies or None,
                        repeats=config.new_seeds or None)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    data = load_dataset(dataset, config.data_root or None, download=config.download,
                        cache_dir=storage_home() / "cache" / "datasets")
    results = BenchmarkResults(storage_home() / "validation")
    context.log.info(f"{dataset} benchmark, preset {preset.name}, protocol {preset.protocol.key()}, "
                     f"strategies {list(preset.strategies)}, data from {data.source}")
    outcome = run_benchmark(preset, data, results, base_seed=config.base_seed, log=context.log.info,
                            device=config.device)

    summaries = outcome.summaries
    ratios = compute_ratios(summaries)
    title = (f"{dataset} ({preset.name}): initial {preset.protocol.initial_fraction:.0%}, "
             f"{preset.protocol.rounds} x {preset.protocol.acquire_per_round}")
    metadata = {
        "accuracy_per_round_plot": dg.MetadataValue.md(png_markdown(accuracy_plot_png(summaries, title), title)),
        "results": dg.MetadataValue.md(results_table_markdown(summaries)),
        "accuracy_per_round": dg.MetadataValue.md(accuracy_per_round_markdown(summaries)),
        "protocol_key": outcome.protocol_key,
        "protocol": dg.MetadataValue.json(asdict(preset.protocol)),
        "preset": preset.name,
        "new_seeds": dg.MetadataValue.json(outcome.new_seeds),
        "seeds_stored": min(len(s.seeds) for s in summaries.values()),
        "results_path": dg.MetadataValue.path(str(results.path(dataset))),
        "data_source": dg.MetadataValue.path(data.source),
    }
    for name, summary in summaries.items():
        # Numeric entries so the UI can plot a strategy's accuracy across materializations.
        metadata[f"final_accuracy/{name}"] = dg.MetadataValue.float(summary.final_accuracy)
        if name in ratios:
            metadata[f"compute_vs_full_pool/{name}"] = dg.MetadataValue.float(ratios[name])
    context.log.info(json.dumps({name: round(s.final_accuracy, 4) for name, s in summaries.items()}))
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="validation",
    kinds={"pytorch"},
    description="MNIST: CEAL (entropy, variation ratios; several candidate pool sizes) against full-pool "
    "acquisition, random and BALD, the paper's protocol; each materialization adds seeds to the results store.",
)
def mnist_benchmark(context: dg.AssetExecutionContext, config: BenchmarkConfig) -> dg.MaterializeResult:
    return materialize_benchmark(context, "mnist", config)


@dg.asset(
    group_name="validation",
    kinds={"pytorch"},
    description="CIFAR-10 with VGG-11-BN: CEAL against full-pool acquisition and random, the paper's protocol; "
    "each materialization adds seeds to the results store.",
)
def cifar10_benchmark(context: dg.AssetExecutionContext, config: BenchmarkConfig) -> dg.MaterializeResult:
    return materialize_benchmark(context, "cifar10", config)


@dg.asset(
    group_name="validation",
    kinds={"pytorch"},
    description="3D detector on synthetic driving data (night, rain, far, rare sub-populations): random, full-pool "
    "heatmap entropy and CEAL with it, plus the selection stage (class balance, diversity, both, pruning, a money "
    "budget); the area under the mAP curve and final mAP as paired differences to random with 95% CIs, labels to "
    "parity, per-class AP, compute, what each strategy buys, and whether each acquisition value tracks the error.",
)
def detection_benchmark(context: dg.AssetExecutionContext, config: DetectionBenchmarkConfig) -> dg.MaterializeResult:
    import torch

    from ceal_pipeline.validation.detection.benchmark import run_detection_benchmark
    from ceal_pipeline.validation.detection.presets import get_detection_preset
    from ceal_pipeline.validation.detection.report import (
        map_per_round_markdown,
        map_plot_png,
        paired_markdown,
        per_class_markdown,
        pruning_markdown,
        results_table_markdown,
        score_error_markdown,
        subpopulations_markdown,
    )
    from ceal_pipeline.validation.detection.results import detection_summary_json
    from ceal_pipeline.validation.report import png_markdown
    from ceal_pipeline.validation.results import BenchmarkResults

    preset = get_detection_preset(config.preset, config.overrides(), strategies=config.strategies or None,
                                  repeats=config.new_seeds or None)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    results = BenchmarkResults(storage_home() / "validation")
    context.log.info(f"detection benchmark, preset {preset.name}, protocol {preset.protocol.key()}, "
                     f"strategies {list(preset.strategies)}")
    outcome = run_detection_benchmark(preset, results, base_seed=config.base_seed, log=context.log.info,
                                      device=config.device,
                                      num_workers=None if config.num_workers < 0 else config.num_workers)
    summaries = outcome.summaries
    line = detection_summary_json(summaries, outcome.runs, preset=preset.name, protocol_key=outcome.protocol_key)
    p = preset.protocol
    title = f"detection ({preset.name}): {p.initial_labeled} seed frames, {p.rounds} x {p.acquire_per_round}"
    metadata = {
        "map_per_round_plot": dg.MetadataValue.md(png_markdown(map_plot_png(summaries, title), title)),
        "paired_vs_random": dg.MetadataValue.md(paired_markdown(outcome.runs)),
        "results": dg.MetadataValue.md(results_table_markdown(summaries)),
        "map_per_round": dg.MetadataValue.md(map_per_round_markdown(summaries)),
        "per_class_ap": dg.MetadataValue.md(per_class_markdown(summaries)),
        "subpopulations_bought": dg.MetadataValue.md(subpopulations_markdown(summaries, outcome.runs)),
        "score_error_spearman": dg.MetadataValue.md(score_error_markdown(outcome.runs)),
        "pruning": dg.MetadataValue.md(pruning_markdown(summaries)),
        "summary": dg.MetadataValue.json(line),
        "protocol_key": outcome.protocol_key,
        "protocol": dg.MetadataValue.json(asdict(p)),
        "preset": preset.name,
        "new_seeds": dg.MetadataValue.json(outcome.new_seeds),
        "seeds_stored": min(len(s.seeds) for s in summaries.values()),
        "results_path": dg.MetadataValue.path(str(results.path("detection"))),
    }
    for name, summary in summaries.items():
        metadata[f"final_map/{name}"] = dg.MetadataValue.float(summary.final_map)
        if line["strategies"][name]["alc"] is not None:
            metadata[f"alc/{name}"] = dg.MetadataValue.float(line["strategies"][name]["alc"])
    for name, rho in line["score_error_spearman"].items():
        if rho is not None:
            metadata[f"score_error_spearman/{name}"] = dg.MetadataValue.float(rho)
    context.log.info(json.dumps({name: round(s.final_map, 4) for name, s in summaries.items()}))
    return dg.MaterializeResult(metadata=metadata)


validation_assets = [mnist_benchmark, cifar10_benchmark, detection_benchmark]
