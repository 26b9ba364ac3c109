"""`ceal bench detection`: does the selection buy better frames than random for the 3D detector?

Runs a preset of :mod:`ceal_pipeline.validation.detection.presets` (``--quick``:
plumbing in minutes; ``--preset cpu``, the default: 6 rounds, 5 paired seeds,
about 70 minutes on a 2-core CPU when its seeds are split over two processes;
``--preset gpu``: the same protocol at 10x the scale) for seeds not yet in
``$CEAL_HOME/validation/detection.jsonl`` (a rerun adds seeds, an interrupted
one resumes), then prints the summary over every stored seed of the protocol.
``--json`` prints only one JSON line::

    {"dataset": "detection", "preset", "protocol_key", "new_seeds",
     "strategies": {NAME: {"alc", "alc_cost", "alc_boxes", "alc_unclipped", "final_cost", "map_gain_per_cost",
                           "final_car_ap", "final_non_car_map",
                           "paired_vs_random": {"metric": "alc", "mean", "ci95", "seeds",
                                                "final_map": {"mean", "ci95", "seeds"}, "alc_cost": {...},
                                                "alc_boxes": {...}, "alc_unclipped": {...},
                                                "final_map_unclipped": {...}, "final_cost": {...},
                                                "map_gain_per_cost": {...}},
                           "labels_to_parity": {"share_of_random_labels", "seeds_reaching", "seeds",
                                                "frames_per_seed", "cost_per_seed"},
                           "final_map", "final_map_std", "final_map_unclipped", "map_per_round",
                           "map_std_per_round", "labeled_per_round", "seeds", "forward_passes",
                           "frames_scored", "frames_pruned", "compute_vs_full_pool", "acquisition_s",
                           "training_s", "evaluation_s", "per_class_ap", "bought_shares"}},
     "score_error_spearman": {FN: rho}, "score_error_spearman_std": {FN: std},
     "score_missed_spearman": {FN: rho}, "pool_shares": {...}, "pruning": {NAME: {...}}}

``alc`` is the area under held-out mAP against labeled frames divided by the
frames' range (``alc_cost``: against labeling cost; ``alc_boxes``: against
labeled boxes, over the range a strategy shares with random);
``paired_vs_random`` is the strategy minus random of the same run seed, mean
and 95 % t-interval over seeds (``ci95`` null with one seed). mAP, AP, ALC and
shares are fractions; seconds are means per run.
"""

from __future__ import annotations

import argparse
import sys

from ceal_pipeline.cli.benchmark import add_preset_arguments

#: ``validation.detection.presets.DETECTION_PRESET_NAMES``, spelled out so that
#: building the CLI imports nothing heavy (a test keeps the two equal).
PRESETS = ("quick", "cpu", "gpu")

#: Protocol overrides: (flag, type, help); each changes the protocol key.
_OVERRIDES = (
    ("--frames", int, "synthetic frames generated (~80%% pool, ~20%% held-out split)"),
    ("--frames-per-sequence", int, "frames per driving sequence"),
    ("--held-out-frames", int, "held-out frames (one per generated sequence) for mAP and the score-error correlation"),
    ("--initial-labeled", int, "seed set drawn from the pool"),
    ("--acquire-per-round", int, "frames bought per round"),
    ("--rounds", int, "acquisition rounds"),
    ("--epochs", int, "round-0 training epochs"),
    ("--fine-tune-epochs", int, "warm-started epochs of later rounds (when --fine-tune-steps is not set)"),
    ("--fine-tune-steps", int, "warm-started optimiser steps of later rounds (rounded up to whole epochs "
     "unless --exact-steps)"),
    ("--new-frame-repeats", int, "warm-started rounds: passes per epoch over each frame bought in the round "
     "(oversampling; 1 = once, like the others)"),
    ("--generator-seed", int, "the synthetic dataset's seed (the same protocol on another generated dataset)"),
    ("--detector", str, "detector config name (models/)"),
    ("--aggregate", str, "per-frame aggregation of object values (mean, max, sum, top_k_sum, confidence_sum)"),
    ("--price-per-frame", float, "vendor price of labeling one frame"),
    ("--price-per-box", float, "vendor price of one 3D box"),
    ("--budget-per-round", float, "money per round of the _budget strategies (default: K x mean frame cost)"),
    ("--mc-samples", int, "MC-Dropout passes T"),
    ("--temperature", float, "candidate-pool softmax temperature (rank-normalised scores)"),
    ("--per-sequence-cap", int, "at most this many frames bought per sequence and round"),
    ("--prune-last-m", int, "pruning: the last m scores each in the bottom quantile"),
)

#: Protocol switches (flag, help): given, the field is True (and the key changes); absent, the preset's.
_SWITCHES = (
    ("--exact-steps", "warm-started rounds train exactly --fine-tune-steps optimiser steps (the last epoch "
     "partial) instead of rounding them up to whole epochs"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_preset_arguments(parser, PRESETS, "protocol preset (default: cpu, 6 rounds and 5 paired seeds in about 70 "
                         "minutes on 2 cores, seeds split over two processes; gpu: the same protocol at 10x the scale)",
                         "random,heatmap_entropy,ceal_heatmap_entropy_5pct_balanced_diverse")
    group = parser.add_argument_group("protocol overrides (each changes the protocol key)")
    for flag, kind, help_text in _OVERRIDES:
        group.add_argument(flag, type=kind, help=help_text)
    for flag, help_text in _SWITCHES:
        group.add_argument(flag, action="store_true", default=None, help=help_text)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, auto")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="frame-loader processes (default: the loader's, 1 on 2 cores; 0 = in-process)")
    parser.add_argument("--batch-size", type=int, default=None, help="frames per forward pass (default: the config's)")
    parser.add_argument("--results", help="results folder (default: $CEAL_HOME/validation)")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ceal_pipeline.validation.detection.benchmark import run_detection_benchmark, summarise_stored
    from ceal_pipeline.validation.detection.presets import get_detection_preset
    from ceal_pipeline.validation.detection.report import (
        map_per_round_markdown,
        paired_markdown,
        per_class_markdown,
        pruning_markdown,
        results_table_markdown,
        score_error_markdown,
        subpopulations_markdown,
    )
    from ceal_pipeline.validation.detection.results import detection_summary_json
    from ceal_pipeline.validation.results import BenchmarkResults, default_results_folder

    preset_name = "quick" if args.quick else (args.preset or "cpu")
    flags = [flag for flag, *_ in _OVERRIDES + _SWITCHES]
    overrides = {flag[2:].replace("-", "_"): getattr(args, flag[2:].replace("-", "_")) for flag in flags}
    try:
        preset = get_detection_preset(preset_name, overrides, strategies=args.strategies, repeats=args.repeats)
    except ValueError as exc:
        print(f"ceal bench detection: {exc}", file=sys.stderr)
        return 2
    results = BenchmarkResults(Path(args.results) if args.results else default_results_folder())
    log = None if args.json else (lambda message: print(message, file=sys.stderr, flush=True))
    if args.summary_only:
        outcome = summarise_stored(preset, results)
    else:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            outcome = run_detection_benchmark(preset, results, seeds=args.seeds, log=log, device=args.device,
                                              num_workers=args.num_workers, batch_size=args.batch_size)
        except ValueError as exc:
            print(f"ceal bench detection: {exc}", file=sys.stderr)
            return 2
    if not outcome.summaries:
        print(f"ceal bench detection: no stored runs for preset {preset_name} in {results.path('detection')}",
              file=sys.stderr)
        return 1
    line = detection_summary_json(outcome.summaries, outcome.runs, preset=preset_name,
                                  protocol_key=outcome.protocol_key, new_seeds=outcome.new_seeds)
    if not args.json:
        for table in (paired_markdown(outcome.runs), results_table_markdown(outcome.summaries),
                      map_per_round_markdown(outcome.summaries),
                      per_class_markdown(outcome.summaries), subpopulations_markdown(outcome.summaries, outcome.runs),
                      score_error_markdown(outcome.runs), pruning_markdown(outcome.summaries)):
            print(table, end="\n\n")
    print(json.dumps(line))
    return 0
