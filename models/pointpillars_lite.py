# LiDAR-only variant of the default detector: the same pillars, BEV backbone and
# MC-Dropout head, no camera branch (frames need no images).
_base_ = ['./bevfusion_lite.py']
name = 'pointpillars_lite'

model = dict(camera_branch=None, fuser=None)
data = dict(image_size=None, batch_size=4)
