"""The BEVFusion-like detector: LiDAR pillars + lifted cameras -> BEV -> CenterPoint head.

Shaped like BEVFusion (Liu et al., 2022) but built only from parts with CPU
kernels: mmcv hard ``Voxelization``, mmdet3d ``PillarFeatureNet`` and
``PointPillarsScatter``, the plain-PyTorch :class:`~.camera_lift.LSSCameraBranch`,
a conv fuser, mmdet3d ``SECOND`` + ``SECONDFPN`` and :class:`~.head.MCDropoutCenterHead`.
The deterministic part (:meth:`CealBEVFusion.extract_bev` plus the head's
deterministic convs) is separated from the dropout-bearing regression so that
MC-Dropout can run it once per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from mmcv.cnn import ConvModule
from mmcv.ops import Voxelization, get_compiling_cuda_version
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ceal_pipeline.detector.inputs import DetectorBatch


#: ``False`` when this mmcv was compiled without CUDA kernels (``get_compiling_cuda_version`` says so).
_MMCV_HAS_CUDA_OPS = get_compiling_cuda_version() != "not available"


@dataclass
class Detections:
    """One frame's detections: ``boxes (K, 7)`` bottom-centre LiDAR boxes
    (``x y z l w h yaw``, metres/radians), ``scores (K,)`` in [0, 1], ``labels (K,)``."""

    boxes: Tensor
    scores: Tensor
    labels: Tensor


@MODELS.register_module()
class ConvFuser(BaseModule):
    """Concatenate BEV maps of the same grid and mix them with one conv (+BN, ReLU).

    ``kernel_size`` 3 (BEVFusion's fuser) also aligns features across
    neighbouring cells; 1 mixes channels only, at a ninth of the cost on the
    full-resolution grid (the tiny config's choice).
    """

    def __init__(self, in_channels: list[int], out_channels: int, kernel_size: int = 3,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.conv = ConvModule(sum(in_channels), out_channels, kernel_size, padding=kernel_size // 2,
                               norm_cfg=dict(type="BN2d"))

    def forward(self, bev_maps: list[Tensor]) -> Tensor:
        return self.conv(torch.cat(bev_maps, dim=1))


def _with_grid(config: dict | None, owner: str, **grid) -> dict | None:
    """Copy of a sub-module config with the detector's grid values filled in.

    The grid (range, pillar size, BEV shape) is stated once, on the detector;
    a sub-config that states a different value is an error, not silently ignored.
    """
    if config is None:
        return None
    config = dict(config)
    for key, value in grid.items():
        if key in config and [float(v) for v in config[key]] != [float(v) for v in value]:
            raise ValueError(
                f"{owner}.{key}={list(config[key])} disagrees with the detector's {key}={list(value)}: "
                f"drop it from {owner} (the detector passes its own down)"
            )
        config[key] = value
    return config


@MODELS.register_module()
class CealBEVFusion(BaseModule):
    """LiDAR (+ optional camera) BEV detector with an MC-Dropout head.

    Args:
        class_names: detector classes in label order.
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres; points outside are dropped.
        voxel_size: ``[dx, dy, dz]`` metres of one pillar (``dz`` spans the range).
            Range and pillar size are passed down to the pillar encoder, scatter,
            camera branch and head, so a config states them once.
        voxel_layer: ``dict(max_num_points=..., max_voxels=(train, test))`` for mmcv ``Voxelization``.
        pts_voxel_encoder / pts_middle_encoder: pillar encoder and scatter configs.
        camera_branch: camera-to-BEV config, or ``None`` for a LiDAR-only model.
        fuser: fuser config (required with a camera branch).
        pts_backbone / pts_neck / bbox_head: BEV backbone, neck and head configs.
    """

    def __init__(
        self,
        class_names: tuple[str, ...],
        point_cloud_range: tuple[float, ...],
        voxel_size: tuple[float, float, float],
        voxel_layer: dict,
        pts_voxel_encoder: dict,
        pts_middle_encoder: dict,
        pts_backbone: dict,
        pts_neck: dict,
        bbox_head: dict,
        camera_branch: dict | None = None,
        fuser: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.class_names = tuple(class_names)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.voxelize = Voxelization(
            voxel_size=list(self.voxel_size),
            point_cloud_range=list(self.point_cloud_range),
            max_num_points=voxel_layer["max_num_points"],
            max_voxels=tuple(voxel_layer["max_voxels"]),
            deterministic=True,
        )
        x0, y0, _, x1, y1, _ = self.point_cloud_range
        self.bev_shape = (round((y1 - y0) / self.voxel_size[1]), round((x1 - x0) / self.voxel_size[0]))
        grid = dict(point_cloud_range=list(self.point_cloud_range), voxel_size=list(self.voxel_size))
        grid_2d = dict(point_cloud_range=list(self.point_cloud_range), voxel_size=list(self.voxel_size[:2]))
        self.pts_voxel_encoder = MODELS.build(_with_grid(pts_voxel_encoder, "pts_voxel_encoder", **grid))
        self.pts_middle_encoder = MODELS.build(
            _with_grid(pts_middle_encoder, "pts_middle_encoder", output_shape=list(self.bev_shape))
        )
        if camera_branch is not None and fuser is None:
            raise ValueError("a detector config with a camera_branch needs a fuser (e.g. dict(type='ConvFuser', ...))")
        camera_branch = _with_grid(camera_branch, "camera_branch", **grid_2d)
        self.camera_branch = MODELS.build(camera_branch) if camera_branch is not None else None
        self.fuser = MODELS.build(fuser) if camera_branch is not None else None
        self.pts_backbone = MODELS.build(pts_backbone)
        self.pts_neck = MODELS.build(pts_neck)
        self.bbox_head = MODELS.build(_with_grid(bbox_head, "bbox_head", **grid_2d))
        if self.bbox_head.num_classes != len(self.class_names):
            raise ValueError(
                f"bbox_head.num_classes={self.bbox_head.num_classes} but {len(self.class_names)} class_names given"
            )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _voxelize(self, frame_points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """mmcv hard voxelization on the points' device, or on the CPU when mmcv has no CUDA kernels.

        An mmcv built without its CUDA ops (``MMCV_WITH_OPS=1`` on a machine with no
        CUDA compiler, say) still runs the whole network on the GPU: only this step
        goes through the CPU, and its outputs are moved back.
        """
        if frame_points.is_cuda and not _MMCV_HAS_CUDA_OPS:
            return tuple(t.to(frame_points.device) for t in self.voxelize(frame_points.cpu().contiguous()))
        return self.voxelize(frame_points.contiguous())

    def _pillar_bev(self, points: list[Tensor]) -> Tensor:
        voxels, coors, num_points = [], [], []
        for b, frame_points in enumerate(points):
            v, c, n = self._voxelize(frame_points)
            voxels.append(v)
            coors.append(nn.functional.pad(c, (1, 0), value=b))  # (batch, z, y, x)
            num_points.append(n)
        voxels_t, coors_t, num_t = torch.cat(voxels), torch.cat(coors), torch.cat(num_points)
        features = self.pts_voxel_encoder(voxels_t, num_t, coors_t)
        return self.pts_middle_encoder(features, coors_t, len(points))

    def extract_bev(self, batch: DetectorBatch) -> Tensor:
        """The deterministic BEV network: ``(B, C, H, W)`` neck features for the head."""
        bev = self._pillar_bev(batch.points)
        if self.camera_branch is not None:
            if batch.images is None:
                raise ValueError(
                    f"frames {batch.frame_ids[:3]}... have no camera inputs but this detector fuses cameras: "
                    "load them with the camera settings of its config, or use the LiDAR-only config "
                    "models/pointpillars_lite.py"
                )
            camera_bev = self.camera_branch(batch.images, batch.cam2img, batch.lidar2cam, self.bev_shape)
            bev = self.fuser([bev, camera_bev])
        return self.pts_neck(self.pts_backbone(bev))[0]

    def loss(self, batch: DetectorBatch) -> dict[str, Tensor]:
        """Training losses for a labeled batch (call in ``train()`` mode)."""
        if batch.gt_boxes is None:
            raise ValueError(f"frames {batch.frame_ids[:3]}... are unlabeled: training needs boxes and labels")
        return self.bbox_head.loss(self.extract_bev(batch), batch.gt_boxes, batch.gt_labels)

    @torch.no_grad()
    def predict(self, batch: DetectorBatch) -> list[Detections]:
        """Deterministic detections per frame (dropout off; call in ``eval()`` mode)."""
        heatmap_logits, trunk = self.bbox_head.forward_deterministic(self.extract_bev(batch))
        peaks = self.bbox_head.find_peaks(heatmap_logits)
        boxes = self.bbox_head.decode_boxes(self.bbox_head.forward_regression(trunk), peaks)
        return [
            Detections(boxes=boxes[peaks.frame_index == b], scores=peaks.score[peaks.frame_index == b],
                       labels=peaks.label[peaks.frame_index == b])
            for b in range(len(batch.points))
        ]

    def forward(self, batch: DetectorBatch, mode: str = "predict"):
        """mmengine-style entry point: ``mode="loss"`` or ``"predict"``."""
        if mode == "loss":
            return self.loss(batch)
        if mode == "predict":
            return self.predict(batch)
        raise ValueError(f"unknown mode {mode!r}: use 'loss' or 'predict'")
