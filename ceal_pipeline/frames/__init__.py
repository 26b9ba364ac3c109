"""Driving frames: one record type, read from aiMotive folders, mmdet3d info files
or the synthetic generator.

- :mod:`.records`: ``FrameRecord`` and friends (the contract every consumer reads);
- :mod:`.sources`: ``read_source(kind, root, **options) -> FrameSourceResult``;
- :mod:`.aimotive`, :mod:`.mmdet3d_info`, :mod:`.synthetic`: the readers;
- :mod:`.classes`: the one source-type -> detector-class table;
- :mod:`.box_conventions`: camera-frame / centre-origin / quaternion boxes -> records';
- :mod:`.points`: ``load_points(record) -> float32 (P, 4)``;
- :mod:`.points_in_boxes`: numpy points-in-rotated-box test.

Nothing here imports torch.
"""
