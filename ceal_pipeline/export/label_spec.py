"""The class ontology and label specification a vendor labels against.

Versioned: a change to the classes or the box convention bumps
:data:`LABEL_SPEC_VERSION`, and the project manifest of every export states the
version it was made with, so a delivery can be read against the rules it was
labeled under.
"""

from __future__ import annotations

from ceal_pipeline.frames.classes import CLASS_MAPPING
from ceal_pipeline.frames.records import DETECTION_CLASSES

LABEL_SPEC_VERSION = "1.0.0"
#: Cuboids are upright: a delivered rotation with more roll or pitch than this (degrees) is refused.
MAX_TILT_DEG = 1.0

_DESCRIPTIONS = {
    "car": "passenger cars and car-sized vehicles",
    "truck": "large vehicles: trucks, buses, trailers, construction vehicles",
    "pedestrian": "people on foot (standing, walking, sitting)",
    "cyclist": "two-wheelers (bicycles, motorcycles) with or without their rider, one box for both",
}


def class_ontology() -> list[dict]:
    """The detector classes in label order: id, name, description and the source types that belong to it."""
    return [
        {
            "id": i,
            "name": name,
            "description": _DESCRIPTIONS.get(name, name),
            "includes": sorted(k for k, v in CLASS_MAPPING.items() if v == name),
        }
        for i, name in enumerate(DETECTION_CLASSES)
    ]


def label_specification() -> dict:
    """What a delivered box means, in words a vendor's tooling team can implement."""
    return {
        "version": LABEL_SPEC_VERSION,
        "object_types": list(DETECTION_CLASSES),
        "geometry": "3D cuboid per object, in the frame's LiDAR coordinate system (stream 'LIDAR'; x forward, "
                    "y left, z up for aiMotive and the synthetic data, the sensor's own axes otherwise), metres",
        "openlabel_cuboid": "val = [x, y, z, qx, qy, qz, qw, sx, sy, sz]: centre of the cuboid, rotation "
                            "quaternion (a rotation about +z only: a cuboid rolled or pitched by more than "
                            f"{MAX_TILT_DEG} degrees is refused), full sizes along the cuboid's "
                            "x (length, along the heading), y (width), z (height)",
        "mmdet3d_bbox_3d": "[x, y, z, l, w, h, yaw]: gravity centre, sizes, yaw about +z from +x (radians)",
        "rules": [
            "label every object of the listed types whose centre is within 75 m of the LiDAR",
            "the cuboid encloses the whole object, mirrors and antennae excluded",
            "a frame with no such object is delivered with no cuboids (not left out)",
            "the task's external id (= frame id) identifies the frame in a delivery",
            "pre-labels are the detector's boxes: correct, delete or add to them",
        ],
    }
