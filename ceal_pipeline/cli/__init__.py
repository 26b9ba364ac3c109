"""The `ceal` command line.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported lazily so that `ceal --help` and the
light subcommands never pay for torch or mmdet3d imports.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ceal_pipeline.configuration import ProjectConfigError

# (command, module, help). `bench` takes a positional target; `benchmark` is its deprecated
# spelling for the validation targets (it says where the command moved).
_SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("bench", "ceal_pipeline.cli.bench", "benchmarks: performance (sampling, mc, round, catalog, pipeline) and "
     "validation against full-pool acquisition (mnist, cifar10, detection)"),
    ("init", "ceal_pipeline.cli.init", "check a dataset like `inspect` and write the project configuration (ceal.yaml)"),
    ("inspect", "ceal_pipeline.cli.inspect", "summarise a frame source (aimotive, mmdet3d, synthetic) before wiring it in"),
    ("benchmark", "ceal_pipeline.cli.benchmark", "deprecated: moved to `ceal bench {mnist,cifar10,detection}`"),
    ("round", "ceal_pipeline.cli.round", "run acquisition rounds in this process on the project configuration (no daemon)"),
    ("demo", "ceal_pipeline.cli.demo", "generate synthetic data and run 3 acquisition rounds through Dagster"),
    ("status", "ceal_pipeline.cli.status", "where every round stands, from the acquisition history (stage, shards, export)"),
    ("frames", "ceal_pipeline.cli.frames", "the frames kept out of the pool (quarantined) and why; unprune pruned frames"),
    ("export", "ceal_pipeline.cli.export", "withdraw (part of) a round's vendor export, recorded with a reason"),
    ("labels", "ceal_pipeline.cli.labels", "ingest a vendor's label delivery as boxes; retire labeled frames that left the source"),
    ("vendor", "ceal_pipeline.cli.vendor", "the vendor round-trip self-check on a dataset (export, deliver, ingest)"),
    ("review", "ceal_pipeline.cli.review", "a round's bought frames in 3D: write or --open its Rerun recording (.rrd)"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ceal", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name, help_text in _SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
        except ModuleNotFoundError as exc:  # a subcommand still being built
            if exc.name != module_name:
                raise
            p.set_defaults(_missing=module_name)
            continue
        except ProjectConfigError as exc:  # its module loads the code location: say why, keep `ceal init` usable
            p.set_defaults(_config_error=str(exc))
            continue
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"ceal {args.command}: not available in this build ({args._missing} missing)", file=sys.stderr)
        return 2
    if getattr(args, "_config_error", None):
        print(f"ceal {args.command}: {args._config_error}\n(`ceal init --force ...` rewrites it)", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except Exception as exc:  # noqa: BLE001 - a user error gets a line, not a traceback
        if not is_user_error(exc) or os.environ.get("CEAL_DEBUG"):
            raise
        print(f"ceal {args.command}: {exc}", file=sys.stderr)
        return 2


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports something the user can fix (a configuration, a path, a file's
    content, a busy or refused history) rather than a bug: such errors print one line naming
    the thing and the fix (``CEAL_DEBUG=1`` shows the traceback)."""
    if isinstance(exc, (ProjectConfigError, OSError)):
        return True
    user_errors = []
    for module, names in _USER_ERRORS:
        loaded = sys.modules.get(module)  # an error of a module that was never imported was not raised
        user_errors += [getattr(loaded, name) for name in names if loaded is not None and hasattr(loaded, name)]
    return isinstance(exc, tuple(user_errors))


#: Errors of the project's vocabulary whose messages name the file, key or frame and the fix.
_USER_ERRORS = (
    ("ceal_pipeline.core.history.errors", ("HistoryError",)),
    ("ceal_pipeline.bounded_input", ("UntrustedInputError",)),
    ("ceal_pipeline.frames.mmdet3d_info", ("InfoFileError",)),
    ("ceal_pipeline.export.openlabel", ("MalformedDelivery",)),
    ("ceal_pipeline.export.vendor_boxes", ("InvalidDeliveredBoxes",)),
    ("ceal_pipeline.export.file_drop", ("ExportConflict", "CorruptExport")),
    ("ceal_pipeline.catalog.ingest", ("CatalogBusy",)),
    ("ceal_pipeline.catalog.manifest", ("CatalogFormatError",)),
    ("dagster", ("Failure",)),  # an asset's deliberate failure: a configuration or data error, with its reason
    ("ceal_pipeline.frames.points", ("LidarReadError",)),
)


if __name__ == "__main__":
    sys.exit(main())
