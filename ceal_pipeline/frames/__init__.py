"""Driving frames: one record type, read from aiMotive folders, mmdet3d info files
or the synthetic generator.

- :mod:`.records`: ``FrameRecord`` and friends (the contract every consumer reads);
- :mod:`.sources`: ``read_source(kind, root, **options) -> FrameSourceResult``;
- :mod:`.batch`: ``FrameBatch``, frames as columns (what the catalog stores);
- :mod:`.mmdet3d_columns` (+ :mod:`.mmdet3d_cameras`, :mod:`.entry_groups`,
  :mod:`.file_checks`): the vectorised info-file parser behind the mmdet3d reader;
- :mod:`.aimotive`, :mod:`.mmdet3d_info`, :mod:`.synthetic`: the readers;
- :mod:`.classes`: the one source-type -> detector-class table;
- :mod:`.box_conventions`: camera-frame / centre-origin / quaternion boxes -> records';
- :mod:`.points`: ``load_points(record) -> float32 (P, 4)``;
- :mod:`.points_in_boxes`: numpy points-in-rotated-box test.

Nothing here imports torch.
"""
