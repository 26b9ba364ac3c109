"""MC-Dropout inside the box head of an mmdet3d detector: ``CenterHead`` and ``Anchor3DHead``.

Dropout is inserted on the feature map that feeds the head's classification
and regression branches, so every stochastic pass re-runs only those branches:

* ``CenterHead`` (CenterPoint): after the shared conv, before every task's
  ``SeparateHead`` (heatmap, offset, height, size, rotation and velocity branches);
* ``Anchor3DHead`` (PointPillars, SECOND): on the neck's output, before the
  1x1 ``conv_cls``, ``conv_reg`` and ``conv_dir_cls``.

What runs once per frame (the *trunk*: voxelisation, backbone, neck, and
CenterHead's shared conv) is :meth:`trunk`; a pass is :meth:`outputs` with one
dropout mask, ``None`` for the deterministic prediction. Objects are found once,
on the deterministic pass; every pass is read at those objects:

* CenterHead: 3x3 max-pool peaks of the deterministic class heatmaps (the tasks'
  heatmaps side by side, in the model's class order); each pass's branches are
  decoded at the peak cells (CenterPoint's box coding: cell offset, gravity-centre
  height, log sizes when ``norm_bbox``, sin/cos yaw).
* Anchor3DHead: the anchors whose best class score clears ``score_threshold``,
  ``max_detections`` at most, thinned by class-wise greedy non-maximum suppression
  on the boxes' axis-aligned BEV rectangles (mmdet3d's ``use_rotate_nms=False``
  rule). **The T passes are matched by anchor**: object ``k`` of every pass is the
  box the head regresses from the same anchor, so no association across passes is
  needed and no pass can swap two objects. The direction bin of the
  deterministic pass fixes the heading's half-turn in every pass, so a box's
  heading samples spread around one heading instead of jumping by pi.

The "heatmap" of an anchor head is its sigmoid class scores laid out as
``(C, H, W * A)``: cell ``y * W * A + x * A + a`` is anchor ``a`` at ``(y, x)``,
which is also the anchor's index in mmdet3d's ``(H, W, A)`` anchor order. Class
entropy and heatmap entropy then read it like CenterHead's heatmap.

Dropout masks depend on ``(seed, pass, map shape)`` only, never on the frames or
the batch: a frame's scores do not depend on what it is scored with.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ceal_pipeline.core.seeding import derive_seed
from ceal_pipeline.detector.head import Peaks, find_heatmap_peaks


def dropout_mask(shape: tuple[int, ...], p: float, seed: int, pass_index: int) -> Tensor:
    """The scaled keep-mask of pass ``pass_index``: ``(C, H, W)`` of 0 and ``1 / (1 - p)``.

    Drawn on the CPU from ``(seed, pass_index)`` alone (one mask at a time: an
    anchor head's neck map is ~2e7 values, so T masks at once would not fit). ``seed`` may be any
    round seed (up to 63 bits): the pass's own seed is derived from both, never their arithmetic."""
    generator = torch.Generator(device="cpu").manual_seed(derive_seed(int(seed), int(pass_index), "mc_dropout_pass"))
    keep = torch.rand(shape, generator=generator) >= p
    return keep.float() / (1.0 - p)


class CenterHeadMC:
    """MC-Dropout view of an mmdet3d ``CenterHead``."""

    kind = "CenterHead"

    def __init__(self, head, score_threshold: float = 0.1, max_detections: int = 100):
        self.head = head
        self.score_threshold, self.max_detections = score_threshold, max_detections
        coder = head.bbox_coder
        self.cell = (float(coder.voxel_size[0]) * coder.out_size_factor, float(coder.voxel_size[1]) * coder.out_size_factor)
        self.origin = (float(coder.pc_range[0]), float(coder.pc_range[1]))

    def trunk(self, features: list[Tensor]) -> Tensor:
        """The shared conv's output ``(B, C, H, W)``: the map dropout is applied to."""
        return self.head.shared_conv(features[0])

    #: the SeparateHead branches a box needs (velocity and any extra branch are not run)
    BRANCHES = ("heatmap", "reg", "height", "dim", "rot")

    def outputs(self, trunk: Tensor, mask: Tensor | None) -> list[dict]:
        x = trunk if mask is None else trunk * mask.to(trunk.device)
        return [{name: getattr(task, name)(x) for name in self.BRANCHES} for task in self.head.task_heads]

    def heatmap_logits(self, outputs: list[dict]) -> Tensor:
        """``(B, C, H, W)``: the tasks' heatmaps side by side, in the model's class order."""
        return torch.cat([task["heatmap"] for task in outputs], dim=1)

    def find_objects(self, outputs: list[dict]) -> Peaks:
        return find_heatmap_peaks(self.heatmap_logits(outputs), self.score_threshold, self.max_detections)

    def decode(self, outputs: list[dict], peaks: Peaks, reference: list[dict]) -> Tensor:
        """``(K, 7)`` bottom-centre LiDAR boxes of one pass at the peaks."""
        # every task regresses its own boxes; a peak reads the task of its class
        task_of_class = torch.cat([torch.full((task["heatmap"].shape[1],), i, dtype=torch.long)
                                   for i, task in enumerate(outputs)]).to(peaks.label.device)
        task_index = task_of_class[peaks.label]
        width = outputs[0]["heatmap"].shape[-1]
        values = {}
        for name in ("reg", "height", "dim", "rot"):
            stacked = torch.stack([task[name].flatten(2).transpose(1, 2) for task in outputs])  # (tasks, B, HW, ch)
            values[name] = stacked[task_index, peaks.frame_index, peaks.cell]
        gx = (peaks.cell % width).to(values["reg"].dtype) + values["reg"][:, 0]
        gy = (peaks.cell // width).to(values["reg"].dtype) + values["reg"][:, 1]
        x = gx * self.cell[0] + self.origin[0]
        y = gy * self.cell[1] + self.origin[1]
        size = values["dim"].clamp(max=6.0).exp() if self.head.norm_bbox else values["dim"]
        z = values["height"][:, 0] - size[:, 2] / 2.0  # CenterPoint regresses the gravity centre
        yaw = torch.atan2(values["rot"][:, 0], values["rot"][:, 1])
        return torch.stack([x, y, z, size[:, 0], size[:, 1], size[:, 2], yaw], dim=-1)


class AnchorHeadMC:
    """MC-Dropout view of an mmdet3d ``Anchor3DHead`` (single feature level)."""

    kind = "Anchor3DHead"

    def __init__(self, head, score_threshold: float = 0.1, max_detections: int = 100, nms_iou: float = 0.25):
        if not head.use_sigmoid_cls:
            raise ValueError("Anchor3DHead with a softmax classifier: MC-Dropout scoring needs sigmoid class "
                             "scores (use_sigmoid_cls=True, as every shipped anchor config has)")
        self.head = head
        self.score_threshold, self.max_detections, self.nms_iou = score_threshold, max_detections, nms_iou
        self._anchors: dict[tuple, Tensor] = {}

    def trunk(self, features: list[Tensor]) -> Tensor:
        if len(features) != 1:
            raise ValueError(f"Anchor3DHead on {len(features)} feature levels: only single-level heads "
                             "(SECONDFPN necks, as in PointPillars and SECOND) are supported")
        return features[0]

    def outputs(self, trunk: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        x = trunk if mask is None else trunk * mask.to(trunk.device)
        return self.head.forward_single(x)

    def heatmap_logits(self, outputs) -> Tensor:
        """``(B, C, H, W * A)`` class logits per anchor (see the module docstring)."""
        cls_score = outputs[0]
        batch, _, height, width = cls_score.shape
        classes = self.head.num_classes
        anchors = cls_score.shape[1] // classes
        # channels are anchor-major (a * C + c), as mmdet3d's permute(0, 2, 3, 1).reshape(-1, C) reads them
        per_anchor = cls_score.view(batch, anchors, classes, height, width).permute(0, 2, 3, 4, 1)
        return per_anchor.reshape(batch, classes, height, width * anchors)

    def anchors(self, outputs) -> Tensor:
        """``(H * W * A, 7)`` anchors in mmdet3d's order."""
        height, width = outputs[0].shape[-2:]
        key = (height, width, str(outputs[0].device))
        if key not in self._anchors:
            grid = self.head.prior_generator.grid_anchors([(height, width)], device=outputs[0].device)[0]
            self._anchors[key] = grid.reshape(-1, self.head.box_code_size)
        return self._anchors[key]

    def _per_anchor(self, tensor: Tensor, channels: int) -> Tensor:
        """``(B, A * ch, H, W)`` -> ``(B, H * W * A, ch)``."""
        return tensor.permute(0, 2, 3, 1).reshape(tensor.shape[0], -1, channels)

    def decode_all(self, outputs, frame_index: Tensor, anchor_index: Tensor, direction: Tensor | None) -> Tensor:
        deltas = self._per_anchor(outputs[1], self.head.box_code_size)[frame_index, anchor_index]
        # The coder sizes a box as exp(delta) * anchor: a dropout pass of a young model can push a
        # delta past float range (an infinite box). Clamped like the centre head's sizes (e^6 x).
        deltas = torch.cat([deltas[:, :3], deltas[:, 3:6].clamp(max=6.0), deltas[:, 6:]], dim=1)
        boxes = self.head.bbox_coder.decode(self.anchors(outputs)[anchor_index], deltas)[:, :7]
        if direction is not None:
            offset, limit = self.head.dir_offset, self.head.dir_limit_offset
            value = boxes[:, 6] - offset
            rot = value - torch.floor(value / math.pi + limit) * math.pi
            boxes = torch.cat([boxes[:, :6], (rot + offset + math.pi * direction.to(boxes.dtype))[:, None]], dim=1)
        return boxes

    def direction_bins(self, outputs, frame_index: Tensor, anchor_index: Tensor) -> Tensor | None:
        if outputs[2] is None:
            return None
        return self._per_anchor(outputs[2], 2)[frame_index, anchor_index].argmax(dim=-1)

    def find_objects(self, outputs) -> Peaks:
        scores = self.heatmap_logits(outputs).sigmoid()
        batch, classes = scores.shape[:2]
        per_cell = scores.flatten(2)  # (B, C, H*W*A)
        best, label = per_cell.max(dim=1)  # (B, cells)
        frames, cells, labels, kept_scores = [], [], [], []
        for b in range(batch):
            candidates = torch.nonzero(best[b] >= self.score_threshold).flatten()
            order = best[b, candidates].argsort(descending=True)[: max(self.max_detections * 4, 1)]
            candidates = candidates[order]
            index = torch.full_like(candidates, b)
            boxes = self.decode_all(outputs, index, candidates, self.direction_bins(outputs, index, candidates))
            keep = _greedy_bev_nms(boxes, best[b, candidates], label[b, candidates], self.nms_iou)
            keep = keep[: self.max_detections]
            frames.append(index[keep])
            cells.append(candidates[keep])
            labels.append(label[b, candidates[keep]])
            kept_scores.append(best[b, candidates[keep]])
        return Peaks(frame_index=torch.cat(frames), cell=torch.cat(cells), label=torch.cat(labels),
                     score=torch.cat(kept_scores))

    def decode(self, outputs, peaks: Peaks, reference) -> Tensor:
        """``(K, 7)`` boxes of one pass at the objects' anchors; the heading's half-turn from ``reference``."""
        return self.decode_all(outputs, peaks.frame_index, peaks.cell,
                               self.direction_bins(reference, peaks.frame_index, peaks.cell))


def _greedy_bev_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by class-wise greedy NMS, highest score first, on axis-aligned BEV rectangles."""
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    x0, x1 = boxes[:, 0] - boxes[:, 3] / 2, boxes[:, 0] + boxes[:, 3] / 2
    y0, y1 = boxes[:, 1] - boxes[:, 4] / 2, boxes[:, 1] + boxes[:, 4] / 2
    area = (x1 - x0) * (y1 - y0)
    overlap_x = (torch.minimum(x1[:, None], x1[None]) - torch.maximum(x0[:, None], x0[None])).clamp(min=0)
    overlap_y = (torch.minimum(y1[:, None], y1[None]) - torch.maximum(y0[:, None], y0[None])).clamp(min=0)
    inter = overlap_x * overlap_y
    iou = inter / (area[:, None] + area[None] - inter).clamp(min=1e-9)
    same_class = labels[:, None] == labels[None]
    order = scores.argsort(descending=True)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    kept = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        kept.append(i)
        suppressed |= same_class[i] & (iou[i] > iou_threshold)
    return torch.tensor(kept, dtype=torch.long, device=boxes.device)


def mc_head_for(head, score_threshold: float = 0.1, max_detections: int = 100):
    """The MC-Dropout view of an mmdet3d box head; ``TypeError`` naming the supported ones otherwise."""
    from mmdet3d.models.dense_heads import Anchor3DHead, CenterHead

    if isinstance(head, CenterHead):
        return CenterHeadMC(head, score_threshold, max_detections)
    if isinstance(head, Anchor3DHead):
        return AnchorHeadMC(head, score_threshold, max_detections)
    raise TypeError(f"box head {type(head).__name__}: MC-Dropout is inserted into CenterHead and Anchor3DHead "
                    "(and their subclasses) only; use a config with one of them")
