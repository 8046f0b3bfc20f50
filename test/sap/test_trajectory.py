"""The SAP scanning trajectory: grid sizes, zigzag steps, closed loop, windows from any start, start choice."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pano_perception.geometry import lonlat_to_ray
from pano_perception.models.sap import ScanTrajectory


def test_default_grid_is_the_papers_24_views():
    trajectory = ScanTrajectory()
    assert trajectory.step_deg == 45.0
    assert trajectory.pitches_deg == (45.0, 0.0, -45.0)
    assert trajectory.yaws_deg == tuple(-180.0 + 45.0 * c for c in range(8))
    assert len(trajectory) == 24 and len(trajectory.views) == 24
    assert all(v.width == v.height == 1024 and v.hfov == pytest.approx(math.pi / 2) for v in trajectory.views)


@pytest.mark.parametrize("overlap, rows, columns", [(0.0, 2, 4), (0.5, 3, 8), (2 / 3, 4, 12), (0.75, 5, 16),
                                                    (0.8, 6, 20)])
def test_derived_rows_and_columns_match_sap_table_8(overlap, rows, columns):
    trajectory = ScanTrajectory(overlap=overlap)
    assert (trajectory.n_rows, trajectory.n_columns) == (rows, columns)
    assert trajectory.pitches_deg[0] == pytest.approx(45.0) and trajectory.pitches_deg[-1] == pytest.approx(-45.0)


def test_top_and_bottom_rows_reach_the_poles():
    for fov, overlap in ((90, 0.5), (60, 0.5), (75, 0.3)):
        trajectory = ScanTrajectory(fov_deg=fov, overlap=overlap, frame_size=32)
        half_vfov = fov / 2
        assert trajectory.pitches_deg[0] + half_vfov == pytest.approx(90.0)
        assert trajectory.pitches_deg[-1] - half_vfov == pytest.approx(-90.0)
        assert max(-np.diff(trajectory.pitches_deg)) <= trajectory.step_deg + 1e-9


@pytest.mark.parametrize("kwargs", [dict(), dict(overlap=0.0), dict(fov_deg=60, overlap=0.5),
                                    dict(pitch_deg=(-30, 30)), dict(pitch_deg=(0,)), dict(overlap=0.6)])
def test_zigzag_changes_one_axis_per_step_and_visits_every_view_once(kwargs):
    trajectory = ScanTrajectory(frame_size=32, **kwargs)
    positions = trajectory.grid_positions
    assert len(set(positions)) == len(positions) == trajectory.n_rows * trajectory.n_columns
    for (c0, r0), (c1, r1) in zip(positions, positions[1:]):
        assert (c0 == c1 and abs(r0 - r1) == 1) or (r0 == r1 and c1 == c0 + 1)
    views = trajectory.views
    for a, b in zip(views, views[1:]):  # only yaw or only pitch changes
        assert (a.yaw == b.yaw) != (a.pitch == b.pitch)


def test_closed_loop_when_the_column_count_is_even():
    even = ScanTrajectory(frame_size=32)
    assert even.closed_loop
    last, first = even.grid_positions[-1], even.grid_positions[0]
    assert last[1] == first[1] and (last[0] + 1) % even.n_columns == first[0]
    odd = ScanTrajectory(fov_deg=80, overlap=0.0, frame_size=32)  # 5 columns
    assert odd.n_columns == 5 and not odd.closed_loop


@pytest.mark.parametrize("start", [0, 1, 7, 23, 24, -1, 50])
def test_any_start_window_covers_every_view_once_with_one_axis_steps(start):
    trajectory = ScanTrajectory(frame_size=32)
    window = trajectory.window(start)
    assert sorted(window.tolist()) == list(range(24))
    assert window[0] == start % 24
    for a, b in zip(window, window[1:]):
        (c0, r0), (c1, r1) = trajectory.grid_positions[a], trajectory.grid_positions[b]
        assert (c0 == c1 and abs(r0 - r1) == 1) or (r0 == r1 and (c1 - c0) % trajectory.n_columns == 1)
    # The doubled trajectory (2N frames) holds every window: SAP's training windows.
    doubled = np.concatenate([trajectory.window(0), trajectory.window(0)])
    assert (doubled[start % 24:start % 24 + 24] == window).all()


def test_start_view_is_the_one_where_the_prompt_is_most_central():
    trajectory = ScanTrajectory(frame_size=32)
    for index, view in enumerate(trajectory.views):
        ray = np.asarray(lonlat_to_ray(view.yaw + 0.05, view.pitch - 0.05))
        assert trajectory.most_central_view(ray) == index
    north = trajectory.most_central_view(np.array([0.0, 0.0, 1.0]))
    assert trajectory.views[north].pitch == pytest.approx(math.pi / 4)
    with pytest.raises(ValueError, match="non-zero"):
        trajectory.most_central_view(np.zeros(3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(fov_deg=180), "FoV"), (dict(overlap=1.0), "overlap"), (dict(frame_size=8), "frame size"),
    (dict(pitch_deg=()), "empty"), (dict(pitch_deg=(100,)), r"\[-90, 90\]"), (dict(pitch_deg=(0, 0)), "distinct")])
def test_invalid_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ScanTrajectory(**kwargs)
