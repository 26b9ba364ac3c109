"""MC-Dropout scoring of frames: per-frame acquisition values and per-object details.

:func:`score_frames` runs ``T`` MC-Dropout passes over each frame. ``mode``:
``"head"`` runs the deterministic network once and only the dropout + regression
``T`` times, ``"full"`` the whole network ``T`` times (the same numbers for the same
seed); ``seed`` alone fixes the dropout masks; ``acquisition_fn`` names a function
of ``core.detection_acquisition.DETECTION_ACQUISITION_FUNCTIONS`` and ``aggregate``
how it combines a frame's objects. How peaks, box samples and the heatmap make a
frame's value: docs/ACQUISITION.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from ceal_pipeline.core.detection_acquisition import (
    DetectionAcquisitionSettings,
    DetectionMCOutputs,
    get_detection_acquisition_function,
)
from ceal_pipeline.core.frame_explanation import TOP_OBJECTS, FrameExplanation, FrameObjects, explain_frame
from ceal_pipeline.core.localization import box_mean_and_std, localization_entropy
from ceal_pipeline.detector.builder import resolve_device
from ceal_pipeline.detector.inputs import DetectorBatch
from ceal_pipeline.detector.loader import FrameDataset, frame_loader
from ceal_pipeline.frames.records import FrameRecord

MODES = ("head", "full")


@dataclass
class FrameScores:
    """The result of :func:`score_frames`.

    ``scores[i]`` is the acquisition value (nats) of ``frame_ids[i]`` under the
    detection acquisition function named ``acquisition_fn``;
    ``forward_passes`` counts stochastic head passes (frames x T) and
    ``backbone_passes`` runs of the deterministic network (frames in ``head``
    mode, frames x T in ``full`` mode); ``wall_s`` is the scoring wall time in seconds.
    """

    frame_ids: list[str]
    scores: np.ndarray
    objects: list[FrameObjects]
    forward_passes: int
    backbone_passes: int
    mode: str
    passes: int
    seed: int
    aggregate: str
    class_names: tuple[str, ...] = field(default_factory=tuple)
    wall_s: float = 0.0
    acquisition_fn: str = "localization_entropy"
    scores_by_fn: dict[str, np.ndarray] = field(default_factory=dict)
    #: for each rank combination among the functions: its per-frame terms (name -> ``(n_frames,)``)
    #: and their weights, so that frames scored apart can be ranked together later
    terms_by_fn: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    term_weights_by_fn: dict[str, dict[str, float]] = field(default_factory=dict)
    #: ``(n_frames, 2 C)`` float16: each frame's BEV features pooled (mean, max) in the same
    #: forward pass as its MC scoring; the selection stage's diversity reads it.
    embeddings: np.ndarray | None = None

    @property
    def n_detections(self) -> np.ndarray:
        """``(n_frames,)`` int64, the number of objects detected in each frame."""
        return np.array([len(o.labels) for o in self.objects], dtype=np.int64)

    @property
    def scored_at_empty_floor(self) -> np.ndarray:
        """``(n_frames,)`` bool: the frame had no detection and ``acquisition_fn`` gave it the
        constant no-detection value (the floor) instead of reading its heatmap."""
        from_heatmap = get_detection_acquisition_function(self.acquisition_fn).empty_frames_from_heatmap
        return (self.n_detections == 0) & (not from_heatmap)

    def explanations(self, top: int = TOP_OBJECTS) -> list[FrameExplanation]:
        """Why each frame scored what it scored (:func:`~ceal_pipeline.core.frame_explanation.explain_frame`),
        in frame order: detections per class, the ``top`` most uncertain objects, the aggregate
        and the no-detection floor flag."""
        return [
            explain_frame(objects, self.class_names, acquisition_fn=self.acquisition_fn, aggregate=self.aggregate,
                          at_empty_floor=bool(floor), top=top)
            for objects, floor in zip(self.objects, self.scored_at_empty_floor)
        ]


def bev_embedding(bev: torch.Tensor) -> torch.Tensor:
    """``(B, 2 C)`` per-frame embedding of BEV features ``(B, C, H, W)``: the mean and the max over
    the grid of each channel (what the scene holds, and its strongest response), for the
    selection stage's diversity. Costs one reduction of features the scoring pass computed anyway."""
    return torch.cat([bev.mean(dim=(2, 3)), bev.amax(dim=(2, 3))], dim=1)


@torch.no_grad()
def mc_head_outputs_and_embedding(model, batch, masks: torch.Tensor, mode: str):
    """Run one batch through the detector in ``mode`` with the given dropout masks; with each
    frame's :func:`bev_embedding` from the same forward pass (so only the candidates that are
    scored are ever embedded: CEAL's compute property).

    Returns ``(heatmap_logits (B, C, H, W), peaks, box_samples (T, K, 7), embedding (B, 2 C))``
    as tensors on the model's device.
    """
    head = model.bbox_head
    if mode == "head":
        bev = model.extract_bev(batch)
        embedding = bev_embedding(bev)
        heatmap_logits, trunk = head.forward_deterministic(bev)
        regression = head.forward_regression(trunk, masks)  # (T, B, 8, H, W)
    elif mode == "full":
        heatmaps, regressions = [], []
        for t in range(masks.shape[0]):
            bev = model.extract_bev(batch)
            if t == 0:  # the BEV network carries no dropout: every pass gives the same features
                embedding = bev_embedding(bev)
            heatmap_t, trunk_t = head.forward_deterministic(bev)
            heatmaps.append(heatmap_t)
            regressions.append(head.forward_regression(trunk_t, masks[t : t + 1]))
        # The heatmap carries no dropout, so every pass gives the same one; the
        # mean only absorbs floating-point noise of non-deterministic kernels.
        heatmap_logits = torch.stack(heatmaps).mean(dim=0)
        regression = torch.cat(regressions)
    else:
        raise ValueError(f"unknown MC-Dropout mode {mode!r}; choose one of {MODES}")
    peaks = head.find_peaks(heatmap_logits)
    return heatmap_logits, peaks, head.decode_boxes(regression, peaks), embedding


def mc_outputs_to_numpy(heatmap_logits: torch.Tensor, peaks, box_samples: torch.Tensor) -> DetectionMCOutputs:
    """The core's view of one batch: float64 box samples, peaks, and the sigmoid heatmap
    with a leading MC axis of 1 (the head's heatmap is deterministic)."""
    return DetectionMCOutputs(
        box_samples=box_samples.double().cpu().numpy(),
        frame_index=peaks.frame_index.cpu().numpy(),
        peak_cell=peaks.cell.cpu().numpy(),
        heatmap_probs=heatmap_logits.sigmoid().double().cpu().numpy()[None],
    )


def frame_objects(outputs: DetectionMCOutputs, peaks, covariance_floor: float) -> list[FrameObjects]:
    """Per-frame :class:`FrameObjects` of one batch, in frame order."""
    samples = outputs.box_samples
    entropy = localization_entropy(samples, covariance_floor=covariance_floor)
    labels, confidences = peaks.label.cpu().numpy(), peaks.score.double().cpu().numpy()
    objects = []
    for b in range(outputs.n_frames):
        sel = outputs.frame_index == b
        mean, std = box_mean_and_std(samples[:, sel])
        objects.append(FrameObjects(
            boxes=mean,
            box_std=std,
            labels=labels[sel],
            confidences=confidences[sel],
            localization_entropy=entropy[sel],
        ))
    return objects


def score_frames(
    model,
    frames: Sequence[FrameRecord],
    T: int = 10,
    mode: str = "head",
    seed: int = 0,
    aggregate: str = "mean",
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    covariance_floor: float = 1e-4,
    empty: float | None = None,
    num_workers: int | None = None,
    acquisition_fn: str = "localization_entropy",
    extra_acquisition_fns: Sequence[str] = (),
) -> FrameScores:
    """Score frames with an MC-Dropout detection acquisition function, reading them ahead in worker processes.

    Args:
        model: a detector from :func:`~ceal_pipeline.detector.builder.build_detector`
            or :func:`~ceal_pipeline.detector.checkpoints.load_detector`.
        frames: the frames to score (labels, if any, are ignored).
        T: number of stochastic passes per frame (``>= 2`` for a non-trivial entropy).
        mode: ``"head"`` (backbone once, dropout head T times batched) or ``"full"``.
        seed: seeds the dropout masks; record it with the scores.
        aggregate: per-frame reduction of per-object values: ``mean``, ``max`` or ``sum``.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"``, ...
        batch_size: frames per forward pass; default the config's ``data.batch_size``.
        covariance_floor: see :func:`~ceal_pipeline.core.localization.localization_entropy` (m^2).
        empty: score of a frame without detections under the localization-only
            functions; default the entropy of a perfectly certain box, so empty frames
            rank last. Must stay ``None`` for the heatmap functions.
        num_workers: processes reading and decoding frames while the model runs
            (:func:`~ceal_pipeline.detector.loader.frame_loader`); ``None`` =
            :func:`~ceal_pipeline.detector.loader.default_num_workers`, ``0`` = read
            in this process between passes. Scores do not depend on it.
        acquisition_fn: a name of
            :data:`~ceal_pipeline.core.detection_acquisition.DETECTION_ACQUISITION_FUNCTIONS`;
            the default ``localization_entropy`` is CEAL's, ``heatmap_entropy`` and
            ``localization_and_heatmap_entropy`` also score frames without detections;
            ``localization_and_heatmap_ranks`` ranks its terms among all the frames of
            this call (``FrameScores.terms_by_fn`` keeps them, to rank across calls).
        extra_acquisition_fns: further function names evaluated on the same passes
            (no extra forward pass), returned in ``FrameScores.scores_by_fn``.

    Raises:
        the reader's error naming the frame and the file when a frame cannot be read.
    """
    if getattr(model, "ceal_config", {}).get("kind") == "mmdet3d":  # a brought mmdet3d detector
        from ceal_pipeline.detector.mmdet3d_scoring import score_frames_mmdet3d

        return score_frames_mmdet3d(model, frames, T=T, mode=mode, seed=seed, aggregate=aggregate,
                                    batch_size=batch_size or 1, covariance_floor=covariance_floor, empty=empty,
                                    acquisition_fn=acquisition_fn, extra_acquisition_fns=extra_acquisition_fns)
    # Checked before any worker starts: a typo must not cost a loader start-up.
    settings = DetectionAcquisitionSettings(aggregate=aggregate, covariance_floor=covariance_floor, empty=empty)
    for name in (acquisition_fn, *extra_acquisition_fns):
        get_detection_acquisition_function(name).check_settings(settings)
    batch_size = int(batch_size or model.ceal_config["data"].get("batch_size", 4))
    device = resolve_device(device)
    loader = frame_loader(FrameDataset.for_model(frames, model), batch_size=batch_size, num_workers=num_workers,
                          device=device)
    return score_batches(model, loader, T=T, mode=mode, seed=seed, aggregate=aggregate, device=device,
                         covariance_floor=covariance_floor, empty=empty, acquisition_fn=acquisition_fn,
                         extra_acquisition_fns=extra_acquisition_fns)


def score_batches(
    model,
    batches: Iterable[DetectorBatch],
    T: int = 10,
    mode: str = "head",
    seed: int = 0,
    aggregate: str = "mean",
    device: str | torch.device = "auto",
    covariance_floor: float = 1e-4,
    empty: float | None = None,
    acquisition_fn: str = "localization_entropy",
    extra_acquisition_fns: Sequence[str] = (),
) -> FrameScores:
    """Score frames that arrive as :class:`DetectorBatch` es (from a loader, or already in memory).

    The arguments are those of :func:`score_frames`; the frames are those of the
    batches, in order. ``wall_s`` counts from the first request for a batch, so it
    includes whatever reading the model waited for.
    """
    if mode not in MODES:
        raise ValueError(f"unknown MC-Dropout mode {mode!r}; choose one of {MODES}")
    functions, settings = acquisition_setup(acquisition_fn, extra_acquisition_fns, T, aggregate=aggregate,
                                            covariance_floor=covariance_floor, empty=empty)
    device = resolve_device(device)
    model.to(device).eval()
    start = time.perf_counter()

    masks = None
    frame_ids: list[str] = []
    batch_terms: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in functions}
    objects = []
    embeddings: list[np.ndarray] = []
    for cpu_batch in batches:
        batch = cpu_batch.to(device, non_blocking=True)
        frame_ids.extend(batch.frame_ids)
        if masks is None:
            ny, nx = model.bev_shape
            factor = model.bbox_head.out_size_factor
            masks = model.bbox_head.draw_mc_masks(T, (ny // factor, nx // factor), seed, device)
        heatmap_logits, peaks, samples, embedding = mc_head_outputs_and_embedding(model, batch, masks, mode)
        embeddings.append(embedding.float().cpu().numpy())
        outputs = mc_outputs_to_numpy(heatmap_logits, peaks, samples)
        # A frame's terms depend on its own outputs only, so scoring batch by batch
        # gives the numbers of scoring all frames at once (rank combinations are
        # combined over every frame of the call, in collected_scores).
        for name, function in functions.items():
            batch_terms[name].append(function.frame_terms(outputs, settings))
        objects.extend(frame_objects(outputs, peaks, covariance_floor))

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return collected_scores(frame_ids, batch_terms, objects, embeddings, functions=functions, settings=settings,
                            acquisition_fn=acquisition_fn, passes=T, mode=mode, seed=seed, aggregate=aggregate,
                            class_names=model.class_names, started=start)


def acquisition_setup(acquisition_fn: str, extra_acquisition_fns: Sequence[str], T: int, **settings):
    """``(functions by name, settings)`` for scoring with ``acquisition_fn`` (plus the extra ones),
    checked before any forward pass; ``settings`` are :class:`DetectionAcquisitionSettings`' fields."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T (MC-Dropout passes) must be a positive int, got {T!r}")
    names = list(dict.fromkeys((acquisition_fn, *extra_acquisition_fns)))
    functions = {name: get_detection_acquisition_function(name) for name in names}
    checked = DetectionAcquisitionSettings(**settings)
    for function in functions.values():
        function.check_settings(checked)
    return functions, checked


def collected_scores(frame_ids: list[str], parts: dict[str, list[dict[str, np.ndarray]]], objects: list[FrameObjects],
                     embeddings: list[np.ndarray], *, functions: dict, settings: DetectionAcquisitionSettings,
                     acquisition_fn: str, passes: int, mode: str, seed: int, aggregate: str,
                     class_names: Sequence[str], started: float) -> FrameScores:
    """The :class:`FrameScores` of batches scored one after another: ``parts`` are each
    acquisition function's per-batch :meth:`~ceal_pipeline.core.detection_acquisition.DetectionAcquisitionFunction.frame_terms`,
    combined here over all the frames (a rank combination ranks among them),
    ``embeddings`` the per-batch embeddings, ``started`` the ``time.perf_counter()``
    when scoring began."""
    scores_by_fn, terms_by_fn, weights_by_fn = {}, {}, {}
    for name, batches in parts.items():
        function = functions[name]
        if not batches:
            scores_by_fn[name] = np.zeros(0)
            continue
        terms = {term: np.concatenate([batch[term] for batch in batches]) for term in batches[0]}
        scores_by_fn[name] = function.combine(terms, settings)
        if function.combines_ranks:
            terms_by_fn[name], weights_by_fn[name] = terms, function.term_weights(settings)
    return FrameScores(
        frame_ids=frame_ids,
        scores=scores_by_fn[acquisition_fn],
        objects=objects,
        forward_passes=len(frame_ids) * passes,
        backbone_passes=len(frame_ids) * (1 if mode == "head" else passes),
        mode=mode,
        passes=passes,
        seed=seed,
        aggregate=aggregate,
        class_names=tuple(class_names),
        wall_s=time.perf_counter() - started,
        acquisition_fn=acquisition_fn,
        scores_by_fn=scores_by_fn,
        terms_by_fn=terms_by_fn,
        term_weights_by_fn=weights_by_fn,
        embeddings=as_float16_embeddings(np.concatenate(embeddings) if embeddings else np.zeros((0, 0))),
    )


def as_float16_embeddings(vectors: np.ndarray) -> np.ndarray:
    """Float16 copy of ``vectors`` for storage, clipped to float16's finite range (65504) so that
    a large activation never becomes ``inf`` (distances would then be undefined)."""
    limit = float(np.finfo(np.float16).max)
    return np.clip(np.nan_to_num(np.asarray(vectors, dtype=np.float32), nan=0.0), -limit, limit).astype(np.float16)
