"""Camera branch: image features lifted to the BEV grid, LSS style, in plain PyTorch.

Lift-Splat-Shoot (Philion & Fidler, 2020): every image feature cell predicts a
categorical distribution over ``D`` depth bins and a context vector; the outer
product places ``D`` weighted copies of the context along the cell's camera ray,
and the points are sum-pooled into BEV cells. BEVFusion does the pooling with a
CUDA-only kernel; here it is one ``index_add_`` over flattened BEV cells, which
runs on CPU and CUDA alike.
"""

from __future__ import annotations

import torch
from mmdet3d.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class LSSCameraBranch(BaseModule):
    """ResNet + FPN image features, depth-distribution lift, BEV sum-pooling.

    Args:
        image_backbone: mmdet backbone config (e.g. ``mmdet.ResNet``).
        image_neck: mmdet neck config (e.g. ``mmdet.FPN``).
        neck_channels: output channels of the neck.
        feature_level: which neck output is lifted (0 = finest).
        out_channels: channels of the BEV feature map produced.
        depth_bins: ``(start, stop, step)`` metres of the depth bin centres.
        point_cloud_range: ``[x0, y0, z0, x1, y1, z1]`` metres of the BEV grid.
        voxel_size: ``[dx, dy]`` metres of one BEV cell (same grid as the pillars).
    """

    def __init__(
        self,
        image_backbone: dict,
        image_neck: dict,
        neck_channels: int,
        feature_level: int = 0,
        out_channels: int = 32,
        depth_bins: tuple[float, float, float] = (1.0, 41.0, 1.0),
        point_cloud_range: tuple[float, ...] = (-40.0, -40.0, -3.0, 40.0, 40.0, 3.0),
        voxel_size: tuple[float, float] = (0.5, 0.5),
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.image_backbone = MODELS.build(image_backbone)
        self.image_neck = MODELS.build(image_neck)
        self.feature_level = feature_level
        self.out_channels = out_channels
        start, stop, step = depth_bins
        self.register_buffer("depths", torch.arange(start, stop, step, dtype=torch.float32), persistent=False)
        self.depth_net = nn.Sequential(
            nn.Conv2d(neck_channels, neck_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(neck_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(neck_channels, len(self.depths) + out_channels, 1),
        )
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.voxel_size = tuple(float(v) for v in voxel_size[:2])

    def image_features(self, images: Tensor) -> Tensor:
        """``(N, 3, H, W)`` normalised images -> ``(N, neck_channels, h, w)``."""
        return self.image_neck(self.image_backbone(images))[self.feature_level]

    def frustum_points(self, feature_hw: tuple[int, int], image_hw: tuple[int, int], cam2img: Tensor,
                       lidar2cam: Tensor) -> Tensor:
        """LiDAR-frame positions ``(N, D, h, w, 3)`` of every (depth bin, feature cell).

        ``cam2img`` ``(N, 3, 3)`` must be the intrinsics of the *resized* image of
        size ``image_hw``; ``lidar2cam`` ``(N, 4, 4)``.
        """
        h, w = feature_hw
        device, dtype = cam2img.device, cam2img.dtype
        # Pixel centres of each feature cell in resized-image pixels.
        v = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (image_hw[0] / h)
        u = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (image_hw[1] / w)
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        pixels = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1)  # (h, w, 3)
        rays = torch.einsum("nij,hwj->nhwi", torch.linalg.inv(cam2img), pixels)  # z = 1 in camera frame
        points_cam = self.depths.to(dtype).view(1, -1, 1, 1, 1) * rays.unsqueeze(1)  # (N, D, h, w, 3)
        cam2lidar = torch.linalg.inv(lidar2cam)
        rotation, translation = cam2lidar[:, :3, :3], cam2lidar[:, :3, 3]
        return torch.einsum("nij,ndhwj->ndhwi", rotation, points_cam) + translation.view(-1, 1, 1, 1, 3)

    def forward(self, images: list[Tensor], cam2img: list[Tensor], lidar2cam: list[Tensor],
                bev_shape: tuple[int, int]) -> Tensor:
        """Lift the cameras of each frame to one BEV map ``(B, out_channels, ny, nx)``.

        ``images[b]`` is ``(N_b, 3, H, W)`` (any number of cameras per frame),
        ``cam2img[b]`` ``(N_b, 3, 3)`` for the resized images, ``lidar2cam[b]`` ``(N_b, 4, 4)``.
        """
        ny, nx = bev_shape
        batch = len(images)
        counts = [int(img.shape[0]) for img in images]
        all_images = torch.cat(images)
        features = self.depth_net(self.image_features(all_images))
        n_depth = len(self.depths)
        depth_prob = features[:, :n_depth].softmax(dim=1)  # (N, D, h, w)
        context = features[:, n_depth:]  # (N, C, h, w)
        h, w = features.shape[-2:]
        geometry = self.frustum_points((h, w), tuple(all_images.shape[-2:]), torch.cat(cam2img).float(),
                                       torch.cat(lidar2cam).float())
        # Outer product depth x context: (N, D, h, w, C).
        lifted = depth_prob.unsqueeze(-1) * context.permute(0, 2, 3, 1).unsqueeze(1)

        x0, y0, z0, _, _, z1 = self.point_cloud_range
        ix = ((geometry[..., 0] - x0) / self.voxel_size[0]).floor().long()
        iy = ((geometry[..., 1] - y0) / self.voxel_size[1]).floor().long()
        inside = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny) & (geometry[..., 2] >= z0) & (geometry[..., 2] < z1)
        frame_of_camera = torch.repeat_interleave(torch.arange(batch, device=all_images.device),
                                                  torch.tensor(counts, device=all_images.device))
        frame = frame_of_camera.view(-1, 1, 1, 1).expand_as(ix)
        flat_cell = (frame * ny + iy) * nx + ix
        canvas = lifted.new_zeros((batch * ny * nx, self.out_channels))
        canvas.index_add_(0, flat_cell[inside], lifted[inside])
        return canvas.view(batch, ny, nx, self.out_channels).permute(0, 3, 1, 2).contiguous()
