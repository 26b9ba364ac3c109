"""Driving scenes for the synthetic generator: a road, clutter and moving actors.

A *sequence* is drawn once (road layout, actors with constant velocities, static
clutter, conditions); a *frame* is the sequence seen from the ego vehicle at one
time. Objects are unions of cuboid *parts* (a car is an underbody, a body and a
cabin; a cyclist a bike and a rider...) so that the LiDAR and cameras see
class-specific shapes, while each labeled box encloses all its parts.

World frame: x along the road, y to the left, z up, ground at z = 0; vehicles
drive on the right. The LiDAR frame is the ego's, origin at the sensor
``lidar_height_m`` above the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ceal_pipeline.frames.records import DETECTION_CLASSES
from ceal_pipeline.frames.synthetic.config import SyntheticConfig

CAR, TRUCK, PEDESTRIAN, CYCLIST = (DETECTION_CLASSES.index(c) for c in ("car", "truck", "pedestrian", "cyclist"))
LANE_WIDTH_M = 3.5
SIDEWALK_WIDTH_M = 3.0

#: Object size ranges (l, w, h) in metres, uniform between low and high.
SIZE_RANGES = {
    CAR: ((3.8, 1.7, 1.4), (5.0, 2.0, 1.75)),
    TRUCK: ((6.0, 2.3, 2.8), (12.0, 2.6, 3.8)),
    PEDESTRIAN: ((0.5, 0.5, 1.5), (0.8, 0.75, 1.95)),
    CYCLIST: ((1.6, 0.55, 1.6), (1.9, 0.8, 1.9)),
}
#: Parts as fractions of the object's (l, w, h): x offset, y offset, z bottom, l, w, h, shade.
PART_TEMPLATES = {
    CAR: ((0.0, 0.0, 0.0, 0.8, 0.92, 0.18, 0.3), (0.0, 0.0, 0.18, 1.0, 1.0, 0.4, 1.0),
          (-0.06, 0.0, 0.58, 0.52, 0.9, 0.42, 0.8)),
    TRUCK: ((0.0, 0.0, 0.0, 0.95, 0.85, 0.14, 0.3), (0.38, 0.0, 0.14, 0.22, 1.0, 0.72, 1.0),
            (-0.11, 0.0, 0.14, 0.74, 1.0, 0.86, 0.9)),
    PEDESTRIAN: ((0.0, 0.0, 0.0, 0.5, 0.6, 0.48, 0.6), (0.0, 0.0, 0.48, 0.7, 1.0, 0.36, 1.0),
                 (0.0, 0.0, 0.84, 0.45, 0.4, 0.16, 0.9)),
    CYCLIST: ((0.0, 0.0, 0.0, 1.0, 0.22, 0.55, 0.4), (-0.08, 0.0, 0.5, 0.35, 0.8, 0.5, 1.0)),
}
PALETTES = {
    CAR: ((200, 30, 30), (30, 60, 160), (225, 225, 225), (35, 35, 40), (130, 130, 140), (190, 170, 40)),
    TRUCK: ((235, 235, 235), (210, 120, 40), (40, 90, 50), (60, 60, 150)),
    PEDESTRIAN: ((60, 40, 90), (30, 30, 30), (150, 40, 40), (40, 90, 140)),
    CYCLIST: ((240, 200, 0), (0, 170, 80), (220, 60, 20)),
}
CLASS_PROBS = np.array([0.5, 0.12, 0.23, 0.15])
#: The hard sub-populations a sequence can belong to (several at once), in this order;
#: recorded per frame as the info entry's ``conditions`` list.
CONDITIONS: tuple[str, ...] = ("night", "rain", "far", "rare")
RARE_CLASS_PROBS = np.array([0.25, 0.3, 0.15, 0.3])


@dataclass
class SequenceScene:
    """One sequence: road, ego motion, actors at t=0 and static clutter (world frame)."""

    index: int
    split: str
    night: bool
    rain: bool
    far: bool
    rare: bool
    ego_y: float
    ego_speed: float
    wobble: tuple[float, float, float]  # amplitude (rad), frequency (Hz), phase (rad)
    lane_lines_y: np.ndarray  # world y of lane markings
    actor_boxes: np.ndarray  # (K, 7) bottom-centre at t=0
    actor_velocity: np.ndarray  # (K, 2) m/s
    actor_labels: np.ndarray  # (K,)
    actor_colors: np.ndarray  # (K, 3) uint8
    actor_reflectance: np.ndarray  # (K,)
    clutter_parts: np.ndarray  # (C, 7)
    clutter_colors: np.ndarray  # (C, 3)
    clutter_reflectance: np.ndarray  # (C,)

    @property
    def conditions(self) -> list[str]:
        flags = dict(night=self.night, rain=self.rain, far=self.far, rare=self.rare)
        return [name for name in CONDITIONS if flags[name]]


@dataclass
class FrameScene:
    """A sequence seen from the ego at time ``t`` (LiDAR frame)."""

    t: float
    ego_pose: np.ndarray  # 4x4 LiDAR -> sequence world
    label_boxes: np.ndarray  # (K, 7)
    labels: np.ndarray  # (K,)
    velocities: np.ndarray  # (K, 2) in the LiDAR frame
    track_ids: np.ndarray  # (K,)
    parts: np.ndarray  # (M, 7)
    part_colors: np.ndarray  # (M, 3) float
    part_reflectance: np.ndarray  # (M,)


def is_val_sequence(index: int, val_fraction: float) -> bool:
    """Spread val sequences evenly (every 5th for 0.2), independent of the dataset size."""
    return int((index + 1) * val_fraction) > int(index * val_fraction)


def draw_sequence(config: SyntheticConfig, index: int) -> SequenceScene:
    """The sequence ``index`` of a dataset; depends only on (seed, index) and the scene parameters."""
    rng = np.random.default_rng([config.seed, index])
    night, rain, far, rare = (bool(rng.random() < p) for p in (config.p_night, config.p_rain, config.p_far,
                                                               config.p_rare))
    lanes = int(rng.integers(1, 4))
    road_half = lanes * LANE_WIDTH_M
    ego_lane = int(rng.integers(0, lanes))
    ego_y = -(ego_lane + 0.5) * LANE_WIDTH_M
    ego_speed = float(rng.uniform(0.0, 15.0))
    wobble = (float(rng.uniform(0.0, 0.02)), float(rng.uniform(0.1, 0.5)), float(rng.uniform(0, 2 * np.pi)))
    lane_lines_y = np.arange(-lanes, lanes + 1) * LANE_WIDTH_M

    n_actors = max(1, int(rng.poisson(config.mean_objects)))
    probs = RARE_CLASS_PROBS if rare else CLASS_PROBS
    r_low, r_high = (35.0, config.max_range_m * 0.95) if far else (5.0, config.max_range_m * 0.9)
    boxes, velocity, labels, colors, reflect = [], [], [], [], []
    for _ in range(n_actors * 3):  # rejection sampling; gives up quietly when the road is full
        if len(boxes) == n_actors:
            break
        label = int(rng.choice(4, p=probs))
        vy = 0.0
        low, high = SIZE_RANGES[label]
        length, width, height = rng.uniform(low, high)
        forward = rng.random() < 0.6
        direction = 1.0 if forward else -1.0
        if label in (CAR, TRUCK):
            if rng.random() < (0.25 if label == CAR else 0.1):  # parked at the kerb
                y, speed = direction * -(road_half - width / 2 - 0.3), 0.0
            else:
                lane = int(rng.integers(0, lanes))
                y = -direction * (lane + 0.5) * LANE_WIDTH_M
                speed = direction * max(0.0, ego_speed + rng.normal(0.0, 3.0)) if forward else -rng.uniform(5, 15)
            yaw = 0.0 if forward else np.pi
        elif label == PEDESTRIAN:
            if rng.random() < 0.15:  # crossing the road
                y, yaw = rng.uniform(-road_half, road_half), direction * np.pi / 2
                speed = 0.0
                vy = direction * rng.uniform(0.8, 1.6)
            else:
                side = rng.choice([-1.0, 1.0])
                y = side * (road_half + rng.uniform(0.6, SIDEWALK_WIDTH_M - 0.4))
                yaw, speed = (0.0 if forward else np.pi), direction * rng.uniform(0.0, 1.8)
        else:  # cyclists ride at the right edge of their direction
            y = -direction * (road_half - 0.9)
            yaw, speed = (0.0 if forward else np.pi), direction * rng.uniform(3.0, 7.0)
        distance = rng.uniform(r_low, r_high)
        dy = y - ego_y
        if abs(dy) >= distance:
            continue
        x = rng.choice([-1.0, 1.0]) * np.sqrt(distance**2 - dy**2)
        radius = 0.5 * np.hypot(length, width)
        if abs(x) < 3.5 + radius and abs(dy) < 1.5 + radius:
            continue  # would sit on the ego vehicle
        if any(np.hypot(x - b[0], y - b[1]) < 0.8 * (radius + 0.5 * np.hypot(b[3], b[4])) for b in boxes):
            continue
        yaw += rng.normal(0.0, 0.03)
        boxes.append([x, y, 0.0, length, width, height, yaw])
        velocity.append([speed, vy])
        labels.append(label)
        palette = PALETTES[label]
        colors.append(palette[int(rng.integers(0, len(palette)))])
        reflect.append(rng.uniform(0.25, 0.75))

    clutter, clutter_colors, clutter_reflect = _draw_clutter(rng, road_half, ego_speed, config)
    return SequenceScene(
        index=index, split="val" if is_val_sequence(index, config.val_fraction) else "train",
        night=night, rain=rain, far=far, rare=rare, ego_y=ego_y, ego_speed=ego_speed, wobble=wobble,
        lane_lines_y=lane_lines_y, actor_boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 7),
        actor_velocity=np.asarray(velocity, dtype=np.float64).reshape(-1, 2),
        actor_labels=np.asarray(labels, dtype=np.int64),
        actor_colors=np.asarray(colors, dtype=np.float64).reshape(-1, 3),
        actor_reflectance=np.asarray(reflect), clutter_parts=clutter, clutter_colors=clutter_colors,
        clutter_reflectance=clutter_reflect,
    )


def _draw_clutter(rng, road_half, ego_speed, config):
    """Unlabeled static structure: buildings, poles, trees, bins (world frame)."""
    parts, colors, reflect = [], [], []
    x_low = -config.max_range_m - 20.0
    x_high = config.max_range_m + 20.0 + ego_speed * config.frames_per_sequence * config.frame_interval_s
    for side in (-1.0, 1.0):
        x = x_low
        setback = road_half + SIDEWALK_WIDTH_M + rng.uniform(1.0, 6.0)
        while x < x_high:
            length, depth, height = rng.uniform(8, 30), rng.uniform(8, 15), rng.uniform(4, 15)
            parts.append([x + length / 2, side * (setback + depth / 2), 0.0, length, depth, height, 0.0])
            grey = rng.uniform(90, 180)
            colors.append([grey, grey * rng.uniform(0.85, 1.0), grey * rng.uniform(0.7, 1.0)])
            reflect.append(rng.uniform(0.3, 0.6))
            x += length + rng.uniform(2, 12)
        x = x_low + rng.uniform(0, 20)
        while x < x_high:  # street lights and sign posts
            parts.append([x, side * (road_half + 0.4), 0.0, 0.25, 0.25, rng.uniform(4, 7), 0.0])
            colors.append([90, 90, 95])
            reflect.append(0.8)
            if rng.random() < 0.4:  # a tree beside it: trunk and crown
                tx = x + rng.uniform(4, 8)
                crown = rng.uniform(2.5, 4.0)
                parts.append([tx, side * (road_half + 1.6), 0.0, 0.4, 0.4, 2.6, 0.0])
                parts.append([tx, side * (road_half + 1.6), 2.6, crown, crown, crown, rng.uniform(0, np.pi)])
                colors += [[90, 60, 30], [40, rng.uniform(90, 140), 40]]
                reflect += [0.35, 0.2]
            x += rng.uniform(15, 30)
        for _ in range(int(rng.integers(0, 3))):  # bins and boxes: object-sized but unlabeled
            parts.append([rng.uniform(-50, 50), side * (road_half + rng.uniform(0.5, 2.5)), 0.0,
                          rng.uniform(0.5, 1.2), rng.uniform(0.5, 1.0), rng.uniform(0.8, 1.4), rng.uniform(0, np.pi)])
            colors.append([40, 110, 60])
            reflect.append(0.5)
    return (np.asarray(parts, dtype=np.float64).reshape(-1, 7), np.asarray(colors, dtype=np.float64).reshape(-1, 3),
            np.asarray(reflect, dtype=np.float64))


def actor_parts(boxes: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(parts (M, 7), owner (M,), shade (M,))`` cuboids making up each actor box."""
    parts, owners, shades = [], [], []
    for label in np.unique(labels):
        template = np.asarray(PART_TEMPLATES[int(label)])
        idx = np.flatnonzero(labels == label)
        b = boxes[idx][:, None, :]  # (n, 1, 7)
        t = template[None, :, :]  # (1, p, 7)
        off_x, off_y = t[..., 0] * b[..., 3], t[..., 1] * b[..., 4]
        cos, sin = np.cos(b[..., 6]), np.sin(b[..., 6])
        x = b[..., 0] + off_x * cos - off_y * sin
        y = b[..., 1] + off_x * sin + off_y * cos
        z = b[..., 2] + t[..., 2] * b[..., 5]
        dims = t[..., 3:6] * b[..., 3:6]
        yaw = np.broadcast_to(b[..., 6], x.shape)
        parts.append(np.concatenate([np.stack([x, y, z], -1), dims, yaw[..., None]], -1).reshape(-1, 7))
        owners.append(np.repeat(idx, len(template)))
        shades.append(np.tile(template[:, 6], len(idx)))
    if not parts:
        return np.zeros((0, 7)), np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(parts), np.concatenate(owners), np.concatenate(shades)


def frame_at(scene: SequenceScene, frame_index: int, config: SyntheticConfig) -> FrameScene:
    """The scene at frame ``frame_index`` of its sequence, in the ego's LiDAR frame."""
    t = frame_index * config.frame_interval_s
    amplitude, frequency, phase = scene.wobble
    psi = amplitude * np.sin(2 * np.pi * frequency * t + phase)
    ego_xy = np.array([scene.ego_speed * t, scene.ego_y])
    cos, sin = np.cos(psi), np.sin(psi)
    to_ego = np.array([[cos, sin], [-sin, cos]])  # world -> ego rotation R(-psi)

    def to_lidar(world_boxes: np.ndarray) -> np.ndarray:
        out = world_boxes.copy()
        out[:, :2] = (world_boxes[:, :2] - ego_xy) @ to_ego.T
        out[:, 2] -= config.lidar_height_m
        out[:, 6] = (world_boxes[:, 6] - psi + np.pi) % (2 * np.pi) - np.pi
        return out

    actors_world = scene.actor_boxes.copy()
    actors_world[:, :2] += scene.actor_velocity * t
    boxes = to_lidar(actors_world)
    a_parts, owner, shade = actor_parts(boxes, scene.actor_labels)
    clutter = to_lidar(scene.clutter_parts)
    pose = np.eye(4)
    pose[:2, :2] = to_ego.T
    pose[:2, 3] = ego_xy
    pose[2, 3] = config.lidar_height_m
    return FrameScene(
        t=t, ego_pose=pose, label_boxes=boxes, labels=scene.actor_labels,
        velocities=scene.actor_velocity @ to_ego.T, track_ids=np.arange(len(boxes)),
        parts=np.concatenate([a_parts, clutter]),
        part_colors=np.concatenate([scene.actor_colors[owner] * shade[:, None], scene.clutter_colors]),
        part_reflectance=np.concatenate([scene.actor_reflectance[owner], scene.clutter_reflectance]),
    )
