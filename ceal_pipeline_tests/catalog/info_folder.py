"""A folder of small nuScenes-style info files, written by the catalog benchmark's generator."""

from __future__ import annotations

import pickle
from pathlib import Path

from ceal_pipeline.validation.compute import fleet_infos


class InfoFolder:
    """A folder of nuScenes-style info files sharing one set of point/image files."""

    def __init__(self, root: Path):
        self.root = root
        fleet_infos.write_shared_files(root)

    def write(self, name: str, start: int, stop: int, boxes: int = 6) -> Path:
        return fleet_infos.write_info_file(self.root / name, 0, start, stop, boxes)

    def ids(self, start: int, stop: int) -> list[str]:
        return fleet_infos.frame_tokens(0, start, stop)

    def rewrite(self, name: str, edit) -> None:
        """Load ``name``, let ``edit(info)`` change it, write it back (new mtime and size)."""
        path = self.root / name
        info = pickle.loads(path.read_bytes())
        edit(info)
        path.write_bytes(pickle.dumps(info))
