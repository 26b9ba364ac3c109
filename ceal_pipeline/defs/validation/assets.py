"""``mnist_benchmark`` and ``cifar10_benchmark``: CEAL against full-pool acquisition.

Each materialization runs new seeds of a preset (see
:mod:`ceal_pipeline.validation.presets`), appends every finished
(strategy, seed) run to ``$CEAL_HOME/validation/<dataset>.jsonl`` and reports
the summary over *all* stored seeds of that protocol: the accuracy-per-round
plot, mean ± std per strategy and each strategy's acquisition compute. Torch
is imported inside the asset body, never at code-location load.
"""

# No ``from __future__ import annotations`` here: Dagster reads the asset
# function's ``config: BenchmarkConfig`` annotation at definition time and
# cannot resolve it from a string.
import json
from dataclasses import asdict

import dagster as dg

from ceal_pipeline.paths import ceal_home
from ceal_pipeline.defs.validation.config import BenchmarkConfig


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
                        cache_dir=ceal_home() / "cache" / "datasets")
    results = BenchmarkResults(ceal_home() / "validation")
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


validation_assets = [mnist_benchmark, cifar10_benchmark]
