"""The one table that maps every source's object types onto the detector classes.

Sources name their objects differently (aiMotive ``CAR``/``VAN``/``BICYCLE``,
nuScenes ``construction_vehicle``, KITTI ``Person_sitting``, Lyft
``other_vehicle``...). Every source looks names up here, once, so that "what is a
truck" is decided in one place. Names are compared case-insensitively with spaces
and dashes read as underscores.

Choices worth knowing:
- buses, trailers, construction and other large vehicles count as ``truck``
  (the detector's large-vehicle class); vans, pick-ups and emergency cars as ``car``;
- a ``cyclist`` is a two-wheeler with or without its rider (nuScenes and Lyft
  label the ``bicycle``/``motorcycle``, KITTI and Waymo the ``Cyclist``);
- anything else (barriers, cones, signs, animals, trams, ``Misc``, ``DontCare``,
  shopping carts, unknown types) maps to nothing and the object is dropped; the
  reader counts what it dropped in ``FrameSourceResult.dropped_objects``.
"""

from __future__ import annotations

from ceal_pipeline.frames.records import DETECTION_CLASSES

#: Normalised source object type -> detector class name (must be in DETECTION_CLASSES).
CLASS_MAPPING: dict[str, str] = {
    # cars and car-sized vehicles
    "car": "car",
    "van": "car",
    "pickup": "car",
    "suv": "car",
    "emergency_vehicle": "car",
    "police": "car",
    # large vehicles
    "truck": "truck",
    "bus": "truck",
    "trailer": "truck",
    "construction_vehicle": "truck",
    "other_vehicle": "truck",
    "semi_truck": "truck",
    # people on foot
    "pedestrian": "pedestrian",
    "person_sitting": "pedestrian",
    "person": "pedestrian",
    # two-wheelers and their riders
    "cyclist": "cyclist",
    "bicycle": "cyclist",
    "motorcycle": "cyclist",
    "motorcyclist": "cyclist",
    "bicyclist": "cyclist",
    "rider": "cyclist",
}

# Validated at import: a typo in the table must fail loudly, not drop a class.
_unknown_targets = set(CLASS_MAPPING.values()) - set(DETECTION_CLASSES)
if _unknown_targets:  # pragma: no cover - guards edits to the table above
    raise ValueError(f"CLASS_MAPPING targets {_unknown_targets} are not in DETECTION_CLASSES {DETECTION_CLASSES}")


def normalise_class_name(name: str) -> str:
    """``"Construction Vehicle"`` -> ``"construction_vehicle"``."""
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def detection_label(source_name: str) -> int | None:
    """Index into ``DETECTION_CLASSES`` for a source's object type, or ``None``
    when the type maps to no detector class (the object is then dropped)."""
    target = CLASS_MAPPING.get(normalise_class_name(source_name))
    return None if target is None else DETECTION_CLASSES.index(target)
