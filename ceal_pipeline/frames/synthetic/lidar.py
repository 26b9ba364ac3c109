"""A spinning LiDAR simulated by casting rays against the scene's cuboid parts.

Rays are a regular (beam, azimuth) grid. Every part is tested only against the
azimuth columns its corners span (so a pedestrian costs a few dozen rays, not
the whole revolution), the nearest hit per ray wins (occlusion), and the flat
ground closes every downward ray. Returns then get range noise, range-dependent
dropout (and rain clutter), and an intensity from the surface's reflectance that
falls off with range. Density falls with range by construction: the angular grid
spreads with distance.
"""

from __future__ import annotations

import numpy as np

from ceal_pipeline.frames.box_conventions import box_corners
from ceal_pipeline.frames.synthetic.config import SyntheticConfig


class LidarModel:
    """Ray directions and the ground's range per beam for one configuration."""

    def __init__(self, config: SyntheticConfig):
        self.config = config
        self.elevation = np.deg2rad(np.linspace(*config.lidar_fov_deg, config.lidar_beams))
        self.n_azimuth = config.lidar_azimuth_steps
        self.azimuth_step = 2 * np.pi / self.n_azimuth
        with np.errstate(divide="ignore"):
            ground = np.where(self.elevation < 0, -config.lidar_height_m / np.sin(self.elevation), np.inf)
        self.ground_range = np.where(ground <= config.max_range_m, ground, np.inf)

    def directions(self, beams: np.ndarray, columns: np.ndarray, azimuth_offset: float) -> np.ndarray:
        """``(n, 3)`` unit directions of the rays at (beam, azimuth column) pairs."""
        azimuth = azimuth_offset + columns * self.azimuth_step
        cos_el = np.cos(self.elevation)[beams]
        return np.column_stack([cos_el * np.cos(azimuth), cos_el * np.sin(azimuth), np.sin(self.elevation)[beams]])

    def cast(self, parts: np.ndarray, azimuth_offset: float) -> tuple[np.ndarray, np.ndarray]:
        """``(range (beams, azimuths), hit part (beams, azimuths))``; part -1 is the
        ground and range ``inf`` no return. Nothing beyond ``max_range_m`` returns."""
        beams, n_az = len(self.elevation), self.n_azimuth
        depth = np.repeat(self.ground_range[:, None], n_az, axis=1).ravel()
        owner = np.full(beams * n_az, -1, dtype=np.int64)
        near = np.hypot(parts[:, 0], parts[:, 1]) - 0.5 * np.hypot(parts[:, 3], parts[:, 4])
        candidates = np.flatnonzero(near < self.config.max_range_m)
        if len(candidates) == 0:
            return depth.reshape(beams, n_az), owner.reshape(beams, n_az)
        parts_c = parts[candidates]
        corners = box_corners(parts_c)[:, :4, :2]  # the footprint bounds the azimuth span
        centre_az = np.arctan2(parts_c[:, 1], parts_c[:, 0])
        rel = np.arctan2(corners[..., 1], corners[..., 0]) - centre_az[:, None]
        rel = (rel + np.pi) % (2 * np.pi) - np.pi
        first = np.floor((centre_az + rel.min(1) - azimuth_offset) / self.azimuth_step).astype(np.int64)
        last = np.ceil((centre_az + rel.max(1) - azimuth_offset) / self.azimuth_step).astype(np.int64)
        span = np.minimum(last - first + 1, n_az)
        # (part, column) pairs without a Python loop: repeat each part over its span.
        pair_part = np.repeat(np.arange(len(parts_c)), span)
        pair_col = (np.repeat(first, span) + np.arange(span.sum()) - np.repeat(np.cumsum(span) - span, span)) % n_az
        azimuth = azimuth_offset + pair_col * self.azimuth_step  # (Q,)
        box = parts_c[pair_part]  # (Q, 7)
        cos_yaw, sin_yaw = np.cos(box[:, 6]), np.sin(box[:, 6])
        half = box[:, 3:6] / 2.0
        # Ray origin (the sensor, 0) in each part's frame, relative to the part's centre.
        ox = -(box[:, 0] * cos_yaw + box[:, 1] * sin_yaw)
        oy = -(-box[:, 0] * sin_yaw + box[:, 1] * cos_yaw)
        oz = -(box[:, 2] + half[:, 2])
        cos_el, sin_el = np.cos(self.elevation), np.sin(self.elevation)
        rel_az = azimuth - box[:, 6]
        dx = cos_el[None, :] * np.cos(rel_az)[:, None]  # (Q, beams)
        dy = cos_el[None, :] * np.sin(rel_az)[:, None]
        dz = np.broadcast_to(sin_el[None, :], dx.shape)
        t_near = np.full(dx.shape, -np.inf)
        t_far = np.full(dx.shape, np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            for o, d, h in ((ox, dx, half[:, 0]), (oy, dy, half[:, 1]), (oz, dz, half[:, 2])):
                inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
                t1 = (-h - o)[:, None] * inv
                t2 = (h - o)[:, None] * inv
                np.maximum(t_near, np.minimum(t1, t2), out=t_near)
                np.minimum(t_far, np.maximum(t1, t2), out=t_far)
        # The sensor's range bounds every hit, not only the culling above: otherwise a
        # part straddling max_range_m returns points beyond it while a part just
        # outside it (culled) returns none.
        hit = (t_near <= t_far) & (t_near > 0.0) & (t_near <= self.config.max_range_m)
        q_idx, beam_idx = np.nonzero(hit)
        ray = beam_idx * n_az + pair_col[q_idx]
        t_hit = t_near[q_idx, beam_idx]
        np.minimum.at(depth, ray, t_hit)
        nearest = t_hit <= depth[ray]
        # Coincident surfaces tie: the lowest part index wins, deterministically.
        hit_owner = np.full(len(owner), np.iinfo(np.int64).max)
        np.minimum.at(hit_owner, ray[nearest], candidates[pair_part[q_idx[nearest]]])
        won = hit_owner != np.iinfo(np.int64).max
        owner[won] = hit_owner[won]
        return depth.reshape(beams, n_az), owner.reshape(beams, n_az)


def simulate_sweep(model: LidarModel, parts: np.ndarray, part_reflectance: np.ndarray, ground_reflectance,
                   rng: np.random.Generator, rain: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One revolution: ``(points float32 (P, 4) x, y, z, intensity 0-255, hit part (P,))``.

    ``ground_reflectance(xy (n, 2)) -> (n,)`` gives road and lane-marking
    reflectance for ground returns (part -1).
    """
    config = model.config
    offset = float(rng.uniform(0.0, model.azimuth_step))  # revolutions do not repeat the same rays
    depth, owner = model.cast(parts, offset)
    beams, columns = np.nonzero(depth <= config.max_range_m)  # inf (no return) fails this too
    r = depth[beams, columns]
    fraction = r / config.max_range_m
    keep_p = 1.0 - (config.dropout + 0.25 * fraction**2 + (0.15 if rain else 0.0))
    keep = rng.random(len(r)) < keep_p
    beams, columns, r, fraction = beams[keep], columns[keep], r[keep], fraction[keep]
    sigma = (config.range_noise_m + config.range_noise_per_m * r) * (2.0 if rain else 1.0)
    r_noisy = r + rng.standard_normal(len(r)) * sigma
    xyz = model.directions(beams, columns, offset) * r_noisy[:, None]
    hit = owner[beams, columns]
    reflect = np.where(hit >= 0, part_reflectance[np.maximum(hit, 0)], 0.0)
    ground = hit < 0
    if ground.any():
        reflect[ground] = ground_reflectance(xyz[ground, :2])
    intensity = np.clip(255.0 * reflect * (1.0 - 0.5 * fraction) + 4.0 * rng.standard_normal(len(r)), 0.0, 255.0)
    points = np.column_stack([xyz, intensity])
    if rain:  # droplets: weak returns scattered close to the sensor
        n = int(rng.integers(100, 300))
        az, el = rng.uniform(-np.pi, np.pi, n), rng.uniform(-0.2, 0.15, n)
        rr = rng.uniform(1.5, 12.0, n)
        drops = np.column_stack([rr * np.cos(el) * np.cos(az), rr * np.cos(el) * np.sin(az), rr * np.sin(el),
                                 rng.uniform(0.0, 12.0, n)])
        points = np.concatenate([points, drops])
        hit = np.concatenate([hit, np.full(n, -2, dtype=np.int64)])
    return points.astype(np.float32), hit
