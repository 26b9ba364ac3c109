"""`ceal bench {mnist,cifar10,detection}`: CEAL against full-pool acquisition.

These are the validation targets of the one benchmark command tree, ``ceal bench``
(:mod:`ceal_pipeline.cli.bench`). ``ceal benchmark ...``, their former spelling, still
works as a deprecated alias that says where the command moved.

``detection`` is the 3D detector's benchmark (:mod:`ceal_pipeline.cli.benchmark_detection`);
the rest of this docstring is about the paper's MNIST / CIFAR-10 protocol.

Runs a preset (``--quick``: every strategy on a tiny budget in a minute or two;
``--preset cpu``, the default: the paper's protocol scaled to a CPU;
``--preset paper-cpu``: the paper's pool, batch and candidate pools with
cheaper training, about 40 CPU-minutes per MNIST seed;
``--preset paper``: full scale) for seeds not yet in the results store
(``$CEAL_HOME/validation/<dataset>.jsonl``), so a rerun adds seeds, then prints
the summary over every stored seed. ``--json`` prints only one JSON line::

    {"dataset": ..., "preset": ..., "protocol_key": ..., "new_seeds": [...],
     "strategies": {NAME: {"final_accuracy", "final_accuracy_std", "accuracy_per_round",
                           "accuracy_std_per_round", "seeds", "forward_passes",
                           "acquisition_s", "training_s", "compute_vs_full_pool"}}}

Accuracies are fractions; seconds are means per run.
"""

from __future__ import annotations

import argparse
import sys

#: ``validation.presets.PRESET_NAMES``, spelled out so that building the CLI does
#: not import torch (a test keeps the two equal).
PRESETS = ("quick", "cpu", "paper-cpu", "paper")


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,1,2, got {text!r}") from None


#: The validation targets of ``ceal bench``: name -> help.
DATASETS: dict[str, str] = {
    "mnist": "validation: MNIST, the paper's protocol (accuracy of CEAL vs full-pool acquisition)",
    "cifar10": "validation: CIFAR-10, the paper's protocol (accuracy of CEAL vs full-pool acquisition)",
    "detection": "validation: the 3D detector on synthetic driving data: CEAL, full pool, random, pruning",
}


def add_dataset_parser(targets: argparse._SubParsersAction, dataset: str) -> argparse.ArgumentParser:
    """Add the ``dataset`` target (one of :data:`DATASETS`) to a subcommand's ``targets``."""
    from ceal_pipeline.cli import benchmark_detection

    parser = targets.add_parser(dataset, help=DATASETS[dataset])
    if dataset == "detection":
        benchmark_detection.add_arguments(parser)
    else:
        add_image_arguments(parser)
    parser.set_defaults(dataset=dataset)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The deprecated ``ceal benchmark`` alias: the same targets as ``ceal bench``."""
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="{mnist,cifar10,detection}")
    for dataset in DATASETS:
        add_dataset_parser(sub, dataset)


def add_preset_arguments(parser: argparse.ArgumentParser, presets: tuple[str, ...], preset_help: str,
                         strategies_example: str) -> None:
    """The arguments every validation target of ``ceal bench`` shares: preset, seeds, strategies, output."""
    parser.add_argument("--quick", action="store_true", help="the quick preset (same as --preset quick)")
    parser.add_argument("--preset", choices=presets, default=None, help=preset_help)
    parser.add_argument("--json", action="store_true", help="print only the one-line JSON summary")
    parser.add_argument("--strategies", type=lambda s: [p for p in s.split(",") if p],
                        help=f"comma-separated strategies, e.g. {strategies_example} (default: the preset's)")
    parser.add_argument("--repeats", type=int, help="how many new seeds to run (default: the preset's)")
    parser.add_argument("--seeds", type=_int_list, help="exact run seeds, e.g. 0,1,2 (stored ones are not rerun)")
    parser.add_argument("--summary-only", action="store_true", help="run nothing; summarise the stored runs")


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ceal bench {mnist,cifar10}``."""
    add_preset_arguments(parser, PRESETS, "protocol preset (default: cpu, the paper's protocol scaled down 10x to "
                         "fit a CPU; paper-cpu: the paper's sizes, cheaper training; paper: full scale)",
                         "random,entropy,ceal_entropy_2500")
    group = parser.add_argument_group("protocol overrides (each changes the protocol key)")
    for flag, kind, help_text in (
        ("--initial-fraction", float, "class-balanced initial pool as a fraction of the unlabeled pool"),
        ("--rounds", int, "acquisition rounds"),
        ("--acquire-per-round", int, "images labeled per round"),
        ("--trainings-per-round", int, "models trained per round (different seeds, accuracy averaged)"),
        ("--mc-samples", int, "MC-Dropout forward passes T"),
        ("--temperature", float, "softmax temperature of the candidate pool (rank-normalised scores)"),
        ("--pool-size", int, "train images used as the unlabeled pool"),
        ("--test-size", int, "test images used for accuracy"),
        ("--validation-size", int, "held-out train images for early stopping"),
        ("--epochs", int, "maximum training epochs"),
        ("--batch-size", int, "training batch size"),
        ("--learning-rate", float, "Adam learning rate"),
        ("--patience", int, "early-stopping patience in epochs (0 = off)"),
        ("--width", float, "network width multiplier (1.0 = the paper's)"),
    ):
        group.add_argument(flag, type=kind, help=help_text)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device to train and score on: cpu, cuda, cuda:1")
    parser.add_argument("--data-root", help="dataset folder (default: $CEAL_DATASETS, ../shared/datasets, ~/.ceal/datasets)")
    parser.add_argument("--download", action="store_true", help="download the dataset if it is not found")
    parser.add_argument("--results", help="results folder (default: $CEAL_HOME/validation)")


_OVERRIDES = ("initial_fraction", "rounds", "acquire_per_round", "trainings_per_round", "mc_samples", "temperature",
              "pool_size", "test_size", "validation_size", "epochs", "batch_size", "learning_rate", "patience", "width")


def run(args: argparse.Namespace) -> int:
    """``ceal benchmark DATASET``: say where the command moved (stderr, so ``--json`` stays clean), then run it."""
    print(f"ceal benchmark: deprecated; this command moved to `ceal bench {args.dataset}` (same arguments)",
          file=sys.stderr)
    return run_validation(args)


def run_validation(args: argparse.Namespace) -> int:
    """``ceal bench {mnist,cifar10,detection}``."""
    if args.dataset == "detection":
        from ceal_pipeline.cli import benchmark_detection

        return benchmark_detection.run(args)
    return run_image(args)


def run_image(args: argparse.Namespace) -> int:
    """``ceal bench {mnist,cifar10}``."""
    import json
    from pathlib import Path

    from ceal_pipeline.validation.datasets import DatasetNotFoundError, load_dataset
    from ceal_pipeline.validation.presets import get_preset
    from ceal_pipeline.validation.report import accuracy_per_round_markdown, compute_ratios, results_table_markdown
    from ceal_pipeline.validation.results import BenchmarkResults, default_results_folder, summarise, summary_json

    preset_name = "quick" if args.quick else (args.preset or "cpu")
    try:
        preset = get_preset(args.dataset, preset_name, {name: getattr(args, name) for name in _OVERRIDES},
                            strategies=args.strategies, repeats=args.repeats)
    except ValueError as exc:
        print(f"ceal bench {args.dataset}: {exc}", file=sys.stderr)
        return 2
    results = BenchmarkResults(Path(args.results) if args.results else default_results_folder())
    log = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))

    if args.summary_only:
        key = preset.protocol.key()
        stored = [r for r in results.runs(args.dataset, key) if r["strategy"] in preset.strategies]
        summaries, new_seeds = summarise(stored), []
    else:
        import torch

        from ceal_pipeline.validation.benchmark import run_benchmark

        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            data = load_dataset(args.dataset, args.data_root, download=args.download,
                                cache_dir=default_results_folder().parent / "cache" / "datasets")
        except DatasetNotFoundError as exc:
            print(f"ceal bench {args.dataset}: {exc}", file=sys.stderr)
            return 2
        outcome = run_benchmark(preset, data, results, seeds=args.seeds, log=log, device=args.device)
        summaries, new_seeds = outcome.summaries, outcome.new_seeds

    if not summaries:
        print(f"ceal bench {args.dataset}: no stored runs for preset {preset_name} in {results.path(args.dataset)}",
              file=sys.stderr)
        return 1
    line = summary_json(args.dataset, summaries, preset=preset_name, protocol_key=preset.protocol.key(),
                        new_seeds=new_seeds)
    for name, ratio in compute_ratios(summaries).items():
        line["strategies"][name]["compute_vs_full_pool"] = round(ratio, 4)
    if not args.json:
        print(results_table_markdown(summaries))
        print()
        print(accuracy_per_round_markdown(summaries))
        print()
    print(json.dumps(line))
    return 0
