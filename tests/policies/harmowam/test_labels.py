"""Phase labels from gripper open/close events (policies.harmowam.labels)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from policies.harmowam.labels import LabelConfig, episode_labels, gripper_events, thresholds, window_frames, window_labels

# A known 40-frame episode: open (0.8), closes gradually over frames 10..14, closed (0.2) until frame 29,
# opens in one step at frame 30.
KNOWN = np.array([0.8] * 10 + [0.8, 0.65, 0.5, 0.35, 0.2] + [0.2] * 15 + [0.8] * 10)


def test_known_episode_exact_labels():
    th = thresholds(KNOWN)  # range 0.2..0.8: low 0.41, high 0.59
    assert th == pytest.approx((0.41, 0.59))
    # closing: first frame below 0.41 is 13 (0.35); opening: first frame above 0.59 is 30
    assert gripper_events(KNOWN, *th) == [13, 30]
    expected = np.zeros(40, dtype=np.int64)
    expected[10:17] = 1  # 13 +- 3
    expected[27:34] = 1  # 30 +- 3
    np.testing.assert_array_equal(episode_labels(KNOWN, th, window=3), expected)


def test_labels_do_not_depend_on_units_or_direction():
    th = thresholds(KNOWN)
    base = episode_labels(KNOWN, th, 3)
    for signal in (np.degrees(KNOWN), KNOWN * 125.0, 1.0 - KNOWN):  # degrees, 0-100 %, reversed sense
        np.testing.assert_array_equal(episode_labels(signal, thresholds(signal), 3), base)


def test_noise_inside_the_hysteresis_band_makes_no_event():
    rng = np.random.default_rng(0)
    g = np.concatenate([np.full(20, 0.8), np.full(20, 0.2)])
    g[5:15] = 0.5 + 0.08 * rng.standard_normal(10)  # dithering around the middle, never past 0.41/0.59
    g[5:15] = np.clip(g[5:15], 0.42, 0.58)
    assert gripper_events(g, *thresholds(g)) == [20]


def test_a_gripper_that_never_moves_has_no_events_and_extra_cue_is_ored():
    g = np.full(30, 0.5)
    assert thresholds(g) is None
    np.testing.assert_array_equal(episode_labels(g, None, 10), np.zeros(30, dtype=np.int64))
    extra = np.zeros(30, dtype=np.int64)
    extra[4:7] = 1
    np.testing.assert_array_equal(episode_labels(g, None, 10, extra), extra)
    with pytest.raises(ValueError, match="29 frames, the episode 30"):
        episode_labels(g, None, 10, extra[:29])


def test_window_defaults_to_10_frames_at_30_fps_and_scales_with_fps():
    cfg = LabelConfig()
    assert window_frames(cfg, 30) == 10
    assert window_frames(cfg, 60) == 20
    assert window_frames(cfg, 15) == 5
    assert window_frames(LabelConfig(window=4), 60) == 4


def test_window_labels_clip_at_episode_ends():
    np.testing.assert_array_equal(window_labels(6, [0, 5], 1), np.array([1, 1, 0, 0, 1, 1]))


@pytest.mark.parametrize("bad", [{"hysteresis": (0.7, 0.3)}, {"hysteresis": (0.2, 1.5)}, {"window": -1}, {"extra": "height"}, {"nope": 1}])
def test_bad_label_config_is_refused(bad):
    with pytest.raises(ValidationError):
        LabelConfig(**bad)
