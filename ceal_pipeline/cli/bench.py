"""`ceal bench TARGET`: the one benchmark command tree.

Performance targets (``sampling``, ``mc``, ``round``, ``catalog``, ``pipeline``)
live in ``ceal_pipeline.validation.compute.<module>`` exposing ``add_arguments(parser)``
and ``run(args) -> dict``; the dict is printed as one JSON line. Validation
targets (``mnist``, ``cifar10``, ``detection``: CEAL against full-pool
acquisition, results stored per seed) are :mod:`ceal_pipeline.cli.benchmark`'s.
"""

from __future__ import annotations

import argparse
import importlib
import json

_TARGETS: dict[str, tuple[str, str]] = {
    "sampling": ("ceal_pipeline.validation.compute.sampling", "candidate-pool step at N frames vs numpy.random.choice"),
    "mc": ("ceal_pipeline.validation.compute.mc_dropout", "MC-Dropout head-only vs full-network scoring"),
    "round": ("ceal_pipeline.validation.compute.acquisition_round", "one CEAL round vs one full-pool rescoring round"),
    "catalog": ("ceal_pipeline.validation.compute.catalog",
                "frame catalog: ingest N info-file frames, a 1 %% incremental ingest, a 256-frame shard lookup"),
    "pipeline": ("ceal_pipeline.validation.compute.pipeline_round",
                 "every non-model step of one round through the Dagster assets at N frames (model replaced)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ceal_pipeline.cli import benchmark

    targets = parser.add_subparsers(dest="target", required=True)
    for name, (module_name, help_text) in _TARGETS.items():
        p = targets.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="print only the JSON line (no progress bar)")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.set_defaults(_bench=None, _module=module_name)
            continue
        module.add_arguments(p)
        p.set_defaults(_bench=module.run, _module=module_name)
    for dataset in benchmark.DATASETS:
        benchmark.add_dataset_parser(targets, dataset).set_defaults(_bench=None, _module=None, _validation=True)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "_validation", False):
        from ceal_pipeline.cli import benchmark

        return benchmark.run_validation(args)
    if args._bench is None:
        raise SystemExit(f"ceal bench {args.target}: not available in this build ({args._module} missing)")
    result = args._bench(args)
    print(json.dumps(result, sort_keys=False))
    return 0
