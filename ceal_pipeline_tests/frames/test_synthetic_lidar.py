"""Specification of the synthetic LiDAR: exact nearest-hit ray casting (occlusion)
with azimuth culling, and returns that lie on the surfaces they hit."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ceal_pipeline_tests.frames.box_masks import points_in_boxes
from ceal_pipeline.frames.synthetic.config import SyntheticConfig
from ceal_pipeline.frames.synthetic.lidar import LidarModel, simulate_sweep

SMALL = SyntheticConfig(lidar_beams=8, lidar_azimuth_steps=90, max_range_m=40.0)

parts_strategy = st.lists(
    st.tuples(st.floats(-30, 30), st.floats(-30, 30), st.floats(-1.8, -0.5), st.floats(0.5, 8), st.floats(0.5, 3),
              st.floats(0.5, 4), st.floats(-np.pi, np.pi)),
    min_size=1, max_size=6,
).map(lambda rows: np.array(rows)).filter(lambda p: (np.hypot(p[:, 0], p[:, 1]) > 6 + p[:, 3]).all())


def _brute_force_cast(model: LidarModel, parts: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Every ray against every part with a textbook slab test, no culling; like the
    sensor, it sees nothing beyond ``max_range_m``."""
    depth = np.repeat(model.ground_range[:, None], model.n_azimuth, axis=1)
    owner = np.full(depth.shape, -1)
    for b, elevation in enumerate(model.elevation):
        for a in range(model.n_azimuth):
            azimuth = offset + a * model.azimuth_step
            ray = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                            np.sin(elevation)])
            for k, (x, y, z, length, width, height, yaw) in enumerate(parts):
                rot = np.array([[np.cos(yaw), np.sin(yaw), 0], [-np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]])
                origin = rot @ -np.array([x, y, z + height / 2])
                direction = rot @ ray
                half = np.array([length, width, height]) / 2
                with np.errstate(divide="ignore", invalid="ignore"):  # grazing rays: no hit
                    t1, t2 = (-half - origin) / direction, (half - origin) / direction
                near, far = np.minimum(t1, t2).max(), np.maximum(t1, t2).min()
                if near <= far and 0 < near <= model.config.max_range_m and near < depth[b, a]:
                    depth[b, a], owner[b, a] = near, k
    return depth, owner


@settings(max_examples=25, deadline=None)
@given(parts=parts_strategy, offset=st.floats(0, 0.05))
# Found by exploration: a part just beyond the sensor's range (culled) and one
# straddling it (kept) must both return nothing past max_range_m.
@example(parts=np.array([[30.0, 28.0, -1.0, 1.0, 1.0, 2.0, 0.0]]), offset=0.0)
@example(parts=np.array([[39.5, 0.0, -1.0, 2.0, 1.0, 2.0, 0.0]]), offset=0.0)
def test_culled_vectorised_cast_equals_brute_force_nearest_hit(parts, offset):
    model = LidarModel(SMALL)
    depth, owner = model.cast(parts, offset)
    expected_depth, expected_owner = _brute_force_cast(model, parts, offset)
    np.testing.assert_allclose(depth, expected_depth, rtol=1e-9)
    np.testing.assert_array_equal(owner, expected_owner)


@settings(max_examples=20, deadline=None)
@given(parts=parts_strategy, seed=st.integers(0, 2**31))
def test_noise_free_returns_lie_on_the_part_they_hit_or_on_the_ground(parts, seed):
    config = SyntheticConfig(lidar_beams=16, lidar_azimuth_steps=180, max_range_m=40.0, range_noise_m=0.0,
                             range_noise_per_m=0.0, dropout=0.0)
    model = LidarModel(config)
    points, hit = simulate_sweep(model, parts, np.full(len(parts), 0.5), lambda xy: np.full(len(xy), 0.1),
                                 np.random.default_rng(seed))
    tolerance = 1e-3  # metres: float32 storage of points up to 40 m away
    ground = hit == -1
    np.testing.assert_allclose(points[ground, 2], -config.lidar_height_m, atol=tolerance)
    grown = parts.copy()
    grown[:, 2] -= tolerance
    grown[:, 3:6] += 2 * tolerance
    shrunk = parts.copy()
    shrunk[:, 2] += tolerance
    shrunk[:, 3:6] = np.maximum(shrunk[:, 3:6] - 2 * tolerance, 0.0)
    for k in range(len(parts)):
        on_k = points[hit == k, :3]
        assert points_in_boxes(on_k, grown[k : k + 1]).all(), f"return beyond part {k}"
        assert not points_in_boxes(on_k, shrunk[k : k + 1]).any(), f"return inside part {k}: seen through a surface"
    assert 0 <= points[:, 3].min() and points[:, 3].max() <= 255
