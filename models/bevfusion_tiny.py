# Tiny BEVFusion-like detector for tests and the demo: trains a few epochs on
# ~200 synthetic frames in minutes on a 2-core CPU. The default detector's
# architecture, narrower: 80 m x 80 m at 0.5 m pillars (160 x 160 cells), a
# ResNet-18 of base width 16 on 128 x 256 images, a 16-channel camera BEV.
_base_ = ['./bevfusion_lite.py']
name = 'bevfusion_tiny'

model = dict(
    point_cloud_range=[-40.0, -40.0, -3.0, 40.0, 40.0, 3.0],
    voxel_size=[0.5, 0.5, 6.0],
    voxel_layer=dict(max_num_points=16, max_voxels=(12000, 12000)),
    pts_voxel_encoder=dict(feat_channels=[32]),
    pts_middle_encoder=dict(in_channels=32),
    camera_branch=dict(
        image_backbone=dict(base_channels=16, out_indices=(1, 2)),
        image_neck=dict(in_channels=[32, 64], out_channels=32, num_outs=2),
        neck_channels=32,
        out_channels=16,
        depth_bins=(2.0, 42.0, 2.0)),
    fuser=dict(in_channels=[32, 16], out_channels=32, kernel_size=1),
    pts_backbone=dict(in_channels=32, out_channels=[32, 64], layer_nums=[1, 2], layer_strides=[2, 2]),
    pts_neck=dict(in_channels=[32, 64], out_channels=[32, 32], upsample_strides=[1, 2]),
    bbox_head=dict(in_channels=64, share_conv_channel=32, head_conv=32, max_detections=100))

# image_size: (height, width) pixels the camera images are resized to; None = LiDAR only.
data = dict(image_size=(128, 256), batch_size=4)
train = dict(lr=2e-3, weight_decay=1e-2, warmup_iters=20, grad_clip=10.0)  # the rest as bevfusion_lite
