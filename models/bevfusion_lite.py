# Default BEVFusion-like detector: 102.4 m x 102.4 m at 0.4 m pillars (256 x 256
# cells), ResNet-18 + FPN camera features lifted LSS-style to a 32-channel BEV,
# SECOND + SECONDFPN to a 128 x 128 head map, MC-Dropout CenterPoint head.
name = 'bevfusion_lite'
class_names = ('car', 'truck', 'pedestrian', 'cyclist')
# The grid is stated once: the detector passes range and pillar size down to the
# pillar encoder, scatter (BEV shape = range / pillar size), camera lift and head.
point_cloud_range = [-51.2, -51.2, -3.0, 51.2, 51.2, 3.0]
voxel_size = [0.4, 0.4, 6.0]

model = dict(
    type='CealBEVFusion',
    class_names=class_names,
    point_cloud_range=point_cloud_range,
    voxel_size=voxel_size,
    voxel_layer=dict(max_num_points=20, max_voxels=(30000, 40000)),
    pts_voxel_encoder=dict(
        type='PillarFeatureNet',
        in_channels=4,
        feat_channels=[64],
        with_distance=False,
        norm_cfg=dict(type='BN1d', eps=1e-3, momentum=0.01),
        legacy=False),
    pts_middle_encoder=dict(type='PointPillarsScatter', in_channels=64),
    camera_branch=dict(
        type='LSSCameraBranch',
        image_backbone=dict(
            type='mmdet.ResNet',
            depth=18,
            out_indices=(1, 2, 3),
            frozen_stages=-1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=False,
            style='pytorch'),
        image_neck=dict(type='mmdet.FPN', in_channels=[128, 256, 512], out_channels=64, num_outs=3),
        neck_channels=64,
        feature_level=0,
        out_channels=32,
        depth_bins=(1.0, 60.0, 1.0)),
    fuser=dict(type='ConvFuser', in_channels=[64, 32], out_channels=64),
    pts_backbone=dict(
        type='SECOND',
        in_channels=64,
        out_channels=[64, 128, 256],
        layer_nums=[3, 5, 5],
        layer_strides=[2, 2, 2],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        conv_cfg=dict(type='Conv2d', bias=False)),
    pts_neck=dict(
        type='SECONDFPN',
        in_channels=[64, 128, 256],
        out_channels=[64, 64, 64],
        upsample_strides=[1, 2, 4],
        norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01),
        upsample_cfg=dict(type='deconv', bias=False),
        use_conv_for_no_stride=True),
    bbox_head=dict(
        type='MCDropoutCenterHead',
        in_channels=192,
        num_classes=len(class_names),
        share_conv_channel=64,
        head_conv=64,
        dropout=0.2,
        out_size_factor=2,  # SECOND strides 2 then SECONDFPN back to stride 2
        code_weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
        gaussian_overlap=0.1,
        min_radius=2,
        score_threshold=0.1,
        max_detections=200))

# image_size: (height, width) pixels the camera images are resized to; None = LiDAR only.
data = dict(image_size=(256, 512), batch_size=2)
# augmentation: a random global flip / rotation (radians) / scaling of each training frame
# (detector/augmentation.py); bn_recalibration: recompute the BatchNorm statistics over the
# labeled frames after the last epoch, so eval-mode outputs match the trained weights.
train = dict(lr=1e-3, weight_decay=1e-2, warmup_iters=100, grad_clip=35.0,
             augmentation=dict(flip=True, rotation=0.7854, scaling=(0.95, 1.05)), bn_recalibration=True)
