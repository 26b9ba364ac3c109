"""The synthetic driving-scene generator, the pipeline's embedded default source.

:func:`generate_dataset` writes an mmdet3d v1.x info dataset (LiDAR ``.bin`` +
JPEG cameras + ``ceal_synthetic_infos.pkl``) deterministically from a seed;
:func:`read_frames` generates it if needed and reads it back through the same
mmdet3d-info reader as real data. Parameters: :class:`SyntheticConfig`.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ceal_pipeline.frames.result import FrameSourceResult
from ceal_pipeline.frames.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from ceal_pipeline.frames.synthetic.scenes import CONDITIONS
from ceal_pipeline.frames.synthetic.writer import (
    INFO_FILE,
    ForeignDataFolder,
    SyntheticDatasetBusy,
    SyntheticDatasetMismatch,
    dataset_lock,
    generate_dataset,
    read_manifest,
)

__all__ = ["CONDITIONS", "ForeignDataFolder", "GENERATOR_VERSION", "INFO_FILE", "SyntheticConfig",
           "SyntheticDatasetBusy", "SyntheticDatasetMismatch", "dataset_lock", "generate_dataset", "frame_conditions",
           "read_frames", "read_manifest"]


def read_frames(root: str | Path, n_frames: int | None = None, seed: int | None = None, *, check: str = "header",
                overwrite: bool = False, progress=None, **options) -> FrameSourceResult:
    """Frames of the synthetic dataset in ``root``, generating it first when needed.

    With ``n_frames`` and ``seed`` left ``None`` an existing dataset is read as
    it is (whatever it was generated with) and a missing one is generated with
    the defaults; given values must match an existing dataset (or ``overwrite``).
    """
    from ceal_pipeline.frames import mmdet3d_info

    manifest = read_manifest(root)
    if n_frames is None and seed is None and not options and manifest is not None and "params" in manifest:
        # Read what is there; regenerates with the recorded parameters only if
        # its files were removed after a completed generation.
        known = {f.name for f in fields(SyntheticConfig)}  # an older version may have had other fields
        generate_dataset(root, progress=progress, **{k: v for k, v in manifest["params"].items() if k in known})
    else:
        defaults = SyntheticConfig()
        generate_dataset(root, n_frames=defaults.n_frames if n_frames is None else n_frames,
                         seed=defaults.seed if seed is None else seed, overwrite=overwrite, progress=progress,
                         **options)
    with dataset_lock(root, exclusive=False):  # not regenerated while it is read
        return mmdet3d_info.read_frames(root, info=INFO_FILE, check=check)


def frame_conditions(root: str | Path) -> dict[str, tuple[str, ...]]:
    """Frame id -> the hard sub-populations (:data:`CONDITIONS`) its sequence belongs to.

    Read from the info file of a generated dataset in ``root`` (the ``conditions``
    entry the writer records per frame; empty for an ordinary sequence). The
    frame sources do not carry it on :class:`~ceal_pipeline.frames.records.FrameRecord`,
    since real data has no such ground truth; benchmarks that study what a
    strategy buys read it here.
    """
    from ceal_pipeline.frames.mmdet3d_info import load_info_file

    path = Path(root) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: generate the synthetic dataset in {root} first "
                                "(frames.synthetic.read_frames or generate_dataset)")
    return {str(entry["token"]): tuple(entry.get("conditions", ())) for entry in load_info_file(path)["data_list"]}
