"""CenterPoint-style detection head whose regression branch carries MC-Dropout.

The head has two branches on a shared 3x3 conv:

* ``heatmap``: one sigmoid map per class (object centres, Gaussian focal loss);
  deterministic, so objects are detected once per frame.
* ``regression``: a conv trunk, then :class:`MCDropout`, then one conv giving the
  8 box channels (centre offset 2, gravity-centre height 1, log size 3, sin/cos
  yaw 2). Dropout sits *before the regression outputs*, so MC samples of a box
  come from this branch alone and the expensive BEV network runs once (CEAL's
  compute saving, DESIGN.md "MC-Dropout efficiency").

Why not mmdet3d's ``CenterHead`` itself: its targets and loss are hard-wired to
nuScenes' 9-value boxes with velocity, and its decode path gives no access to
per-object regression samples. The building blocks are reused (mmdet3d's
``draw_heatmap_gaussian``/``gaussian_radius``/``clip_sigmoid``, mmdet's
``GaussianFocalLoss`` and ``L1Loss``, mmcv's ``ConvModule``); all run on CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet3d.models.utils import clip_sigmoid, draw_heatmap_gaussian, gaussian_radius
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

#: Channels of the regression output, in order: offset 0:2, height 2, log size 3:6, yaw sin/cos 6:8.
N_REGRESSION = 8


@dataclass
class Peaks:
    """Objects found on the heatmap of a batch (flattened over frames).

    ``frame_index`` (K,) says which frame of the batch each peak belongs to;
    ``cell`` (K,) is the flat ``y * W + x`` index on the head's feature map;
    ``label`` (K,) the class index and ``score`` (K,) the sigmoid confidence.
    """

    frame_index: Tensor
    cell: Tensor
    label: Tensor
    score: Tensor


def find_heatmap_peaks(heatmap_logits: Tensor, score_threshold: float, max_detections: int) -> Peaks:
    """Local maxima (3x3 max-pool NMS) of ``(B, C, H, W)`` class heatmap logits whose
    sigmoid is at least ``score_threshold``, at most ``max_detections`` per frame,
    highest score first."""
    scores = heatmap_logits.sigmoid()
    batch, _, height, width = scores.shape
    is_peak = scores == F.max_pool2d(scores, 3, stride=1, padding=1)
    scores = torch.where(is_peak, scores, torch.zeros_like(scores)).flatten(1)  # (B, C*H*W)
    k = min(max_detections, scores.shape[1])
    top_scores, top_index = scores.topk(k, dim=1)
    keep = top_scores >= score_threshold
    frame_index = torch.arange(batch, device=scores.device).unsqueeze(1).expand(-1, k)[keep]
    flat_index = top_index[keep]
    return Peaks(
        frame_index=frame_index,
        cell=flat_index % (height * width),
        label=flat_index // (height * width),
        score=top_scores[keep],
    )


@MODELS.register_module()
class MCDropout(nn.Module):
    """Element-wise dropout that can replay externally drawn masks.

    In training it is ordinary inverted dropout. For MC-Dropout scoring the
    caller passes ``mask`` (already scaled by ``1/(1-p)``): masks are drawn from a
    seeded ``torch.Generator`` (:meth:`draw_masks`), so the same seed gives the
    same ``T`` stochastic passes whether they run batched or one by one.
    Without a mask in eval mode it is the identity (the deterministic prediction).
    """

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"MCDropout probability must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is not None:
            return x * mask
        return F.dropout(x, self.p, self.training)

    def draw_masks(self, n_passes: int, shape: tuple[int, ...], seed: int, device: torch.device | str) -> Tensor:
        """Return ``(n_passes, *shape)`` scaled keep-masks drawn from ``seed``.

        Drawn on the CPU generator and then moved, so a seed means the same masks
        on every device.
        """
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        keep = torch.rand((n_passes, *shape), generator=generator) >= self.p
        return (keep.float() / (1.0 - self.p)).to(device)


@MODELS.register_module()
class MCDropoutCenterHead(BaseModule):
    """Single-task CenterPoint head with MC-Dropout before the box regression.

    Args:
        in_channels: channels of the BEV feature map from the neck.
        num_classes: number of object classes (heatmap channels).
        share_conv_channel: channels of the shared 3x3 conv.
        head_conv: channels of each branch's trunk.
        dropout: MC-Dropout probability before the regression output.
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres of the BEV grid.
        voxel_size: ``[dx, dy]`` metres of one input pillar.
        out_size_factor: pillar cells per head cell (the neck's total stride).
        loss_cls / loss_bbox: mmdet loss configs.
        code_weights: weights of the 8 regression channels in the L1 loss.
        gaussian_overlap / min_radius: heatmap target parameters (CenterPoint).
        max_objs: most ground-truth objects per frame used as targets.
        score_threshold / max_detections: peaks kept at prediction time.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        share_conv_channel: int = 64,
        head_conv: int = 64,
        dropout: float = 0.2,
        point_cloud_range: tuple[float, ...] = (-40.0, -40.0, -3.0, 40.0, 40.0, 3.0),
        voxel_size: tuple[float, float] = (0.5, 0.5),
        out_size_factor: int = 2,
        loss_cls: dict | None = None,
        loss_bbox: dict | None = None,
        code_weights: tuple[float, ...] = (1.0,) * N_REGRESSION,
        gaussian_overlap: float = 0.1,
        min_radius: int = 2,
        max_objs: int = 200,
        score_threshold: float = 0.1,
        max_detections: int = 100,
        norm_cfg: dict | None = None,
        init_bias: float = -2.19,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg or dict(type="Kaiming", layer="Conv2d"))
        norm_cfg = norm_cfg or dict(type="BN2d")
        self.num_classes = num_classes
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.voxel_size = tuple(float(v) for v in voxel_size[:2])
        self.out_size_factor = int(out_size_factor)
        self.code_weights = tuple(float(w) for w in code_weights)
        if len(self.code_weights) != N_REGRESSION:
            raise ValueError(f"code_weights must have {N_REGRESSION} entries, got {len(self.code_weights)}")
        self.gaussian_overlap = gaussian_overlap
        self.min_radius = min_radius
        self.max_objs = max_objs
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self.init_bias = init_bias

        self.shared_conv = ConvModule(in_channels, share_conv_channel, 3, padding=1, norm_cfg=norm_cfg)
        self.heatmap = nn.Sequential(
            ConvModule(share_conv_channel, head_conv, 3, padding=1, norm_cfg=norm_cfg),
            nn.Conv2d(head_conv, num_classes, 3, padding=1),
        )
        self.regression_trunk = ConvModule(share_conv_channel, head_conv, 3, padding=1, norm_cfg=norm_cfg)
        self.mc_dropout = MCDropout(dropout)
        # 1x1 so each output cell depends only on its own (dropped) trunk cell:
        # the T batched passes then cost a tiny matmul each.
        self.regression_out = nn.Conv2d(head_conv, N_REGRESSION, 1)
        self.loss_cls = MODELS.build(loss_cls or dict(type="mmdet.GaussianFocalLoss", reduction="mean"))
        self.loss_bbox = MODELS.build(loss_bbox or dict(type="mmdet.L1Loss", reduction="mean", loss_weight=0.25))

    def init_weights(self) -> None:
        super().init_weights()
        # Output layers start near zero (as in FCOS/CenterNet heads): every cell
        # then begins at the prior sigmoid(init_bias) ~ 10% object probability
        # and unit-size, zero-offset boxes, instead of a saturated heatmap whose
        # focal loss starts in the thousands.
        for output in (self.heatmap[-1], self.regression_out):
            nn.init.normal_(output.weight, std=0.01)
            nn.init.zeros_(output.bias)
        nn.init.constant_(self.heatmap[-1].bias, self.init_bias)

    # ------------------------------------------------------------------ forward
    def forward_deterministic(self, bev: Tensor) -> tuple[Tensor, Tensor]:
        """Run the deterministic part of the head once.

        Returns ``(heatmap_logits (B, C, H, W), regression_trunk (B, head_conv, H, W))``.
        """
        shared = self.shared_conv(bev)
        return self.heatmap(shared), self.regression_trunk(shared)

    def forward_regression(self, trunk: Tensor, masks: Tensor | None = None) -> Tensor:
        """Dropout + regression output.

        With ``masks`` of shape ``(T, head_conv, H, W)`` every frame of ``trunk``
        ``(B, head_conv, H, W)`` is passed ``T`` times in one batch and the result
        is ``(T, B, 8, H, W)``; without masks it is ``(B, 8, H, W)`` (ordinary
        dropout in training, identity in eval).
        """
        if masks is None:
            return self.regression_out(self.mc_dropout(trunk))
        n_passes = masks.shape[0]
        dropped = self.mc_dropout(trunk.unsqueeze(0), masks.unsqueeze(1))  # (T, B, C, H, W)
        flat = self.regression_out(dropped.flatten(0, 1))
        return flat.view(n_passes, trunk.shape[0], *flat.shape[1:])

    def draw_mc_masks(self, n_passes: int, feature_hw: tuple[int, int], seed: int, device) -> Tensor:
        """The ``T`` dropout masks of one MC-Dropout scoring run, ``(T, head_conv, H, W)``.

        Masks depend only on ``(seed, T, map size)``, not on the frames, so a
        frame's score does not depend on how frames are batched or sharded.
        """
        channels = self.regression_out.in_channels
        return self.mc_dropout.draw_masks(n_passes, (channels, *feature_hw), seed, device)

    # ------------------------------------------------------------------ targets
    def _cell_size(self) -> tuple[float, float]:
        return self.voxel_size[0] * self.out_size_factor, self.voxel_size[1] * self.out_size_factor

    def get_targets(self, gt_boxes: list[Tensor], gt_labels: list[Tensor], feature_hw: tuple[int, int]):
        """CenterPoint targets for a batch.

        ``gt_boxes[b]`` is ``(n, 7)`` bottom-centre LiDAR boxes, ``gt_labels[b]`` ``(n,)``.
        Returns ``heatmap (B, C, H, W)``, ``box_target (B, max_objs, 8)``,
        ``cell (B, max_objs)`` and ``mask (B, max_objs)``.
        """
        height, width = feature_hw
        device = gt_boxes[0].device if gt_boxes else torch.device("cpu")
        batch = len(gt_boxes)
        heatmap = torch.zeros((batch, self.num_classes, height, width), device=device)
        box_target = torch.zeros((batch, self.max_objs, N_REGRESSION), device=device)
        cell = torch.zeros((batch, self.max_objs), dtype=torch.long, device=device)
        mask = torch.zeros((batch, self.max_objs), dtype=torch.bool, device=device)
        cell_x, cell_y = self._cell_size()
        x0, y0 = self.point_cloud_range[0], self.point_cloud_range[1]
        for b, (boxes, labels) in enumerate(zip(gt_boxes, gt_labels)):
            slot = 0
            for box, label in zip(boxes.cpu(), labels.cpu()):
                if slot >= self.max_objs:
                    break
                x, y, z, length, width_m, h, yaw = box.tolist()
                gx, gy = (x - x0) / cell_x, (y - y0) / cell_y
                ix, iy = int(gx), int(gy)
                if not (0 <= gx < width and 0 <= gy < height) or length <= 0 or width_m <= 0:
                    continue
                radius = gaussian_radius(
                    (torch.tensor(width_m / cell_y), torch.tensor(length / cell_x)), min_overlap=self.gaussian_overlap
                )
                radius = max(self.min_radius, int(radius))
                draw_heatmap_gaussian(heatmap[b, int(label)], (ix, iy), radius)
                # Regress the gravity centre height (CenterPoint), log sizes and
                # sin/cos yaw (continuous across the +-pi wrap).
                box_target[b, slot] = torch.tensor(
                    [gx - ix, gy - iy, z + h / 2.0, math.log(length), math.log(width_m), math.log(max(h, 1e-3)),
                     math.sin(yaw), math.cos(yaw)],
                    device=device,
                )
                cell[b, slot] = iy * width + ix
                mask[b, slot] = True
                slot += 1
        return heatmap, box_target, cell, mask

    def loss(self, bev: Tensor, gt_boxes: list[Tensor], gt_labels: list[Tensor]) -> dict[str, Tensor]:
        """Heatmap focal loss + masked L1 box loss (training mode: ordinary dropout)."""
        heatmap_logits, trunk = self.forward_deterministic(bev)
        regression = self.forward_regression(trunk)
        target_hm, target_box, cell, mask = self.get_targets(gt_boxes, gt_labels, tuple(heatmap_logits.shape[-2:]))
        num_pos = max(float(target_hm.eq(1).float().sum().item()), 1.0)
        loss_heatmap = self.loss_cls(clip_sigmoid(heatmap_logits), target_hm, avg_factor=num_pos)
        flat = regression.flatten(2).transpose(1, 2)  # (B, H*W, 8)
        pred = flat.gather(1, cell.unsqueeze(-1).expand(-1, -1, N_REGRESSION))
        weights = mask.unsqueeze(-1).float() * pred.new_tensor(self.code_weights)
        loss_box = self.loss_bbox(pred, target_box, weights, avg_factor=float(mask.sum().item()) + 1e-4)
        return {"loss_heatmap": loss_heatmap, "loss_bbox": loss_box}

    # ------------------------------------------------------------------ decoding
    def find_peaks(self, heatmap_logits: Tensor) -> Peaks:
        """Local maxima (3x3 max-pool NMS) of the class heatmaps above ``score_threshold``,
        at most ``max_detections`` per frame, highest score first."""
        return find_heatmap_peaks(heatmap_logits, self.score_threshold, self.max_detections)

    def decode_boxes(self, regression: Tensor, peaks: Peaks) -> Tensor:
        """Boxes at the peaks from regression maps.

        ``regression`` is ``(B, 8, H, W)`` or ``(T, B, 8, H, W)``; returns
        ``(K, 7)`` or ``(T, K, 7)`` bottom-centre boxes ``x y z l w h yaw`` (metres, rad).
        """
        squeeze = regression.dim() == 4
        if squeeze:
            regression = regression.unsqueeze(0)
        width = regression.shape[-1]
        flat = regression.flatten(3).transpose(2, 3)  # (T, B, H*W, 8)
        values = flat[:, peaks.frame_index, peaks.cell]  # (T, K, 8)
        cell_x, cell_y = self._cell_size()
        gx = (peaks.cell % width).to(values.dtype)
        gy = (peaks.cell // width).to(values.dtype)
        x = (gx + values[..., 0]) * cell_x + self.point_cloud_range[0]
        y = (gy + values[..., 1]) * cell_y + self.point_cloud_range[1]
        size = values[..., 3:6].clamp(max=6.0).exp()
        z = values[..., 2] - size[..., 2] / 2.0
        yaw = torch.atan2(values[..., 6], values[..., 7])
        boxes = torch.stack([x, y, z, size[..., 0], size[..., 1], size[..., 2], yaw], dim=-1)
        return boxes[0] if squeeze else boxes
