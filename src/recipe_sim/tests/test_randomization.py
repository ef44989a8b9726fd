"""Domain randomization: Table IV defaults, ranges, identity when disabled, seeding, per-step noise."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml

from recipe_common import paths
from recipe_common.config import ConfigError
from recipe_sim import randomization as dr

RANGE_KEYS = {  # sample key -> config item
    "object_mass": "object_mass",
    "object_friction": "object_friction",
    "object_scale": "object_scale",
    "object_init_yaw": "object_init_yaw",
    "hand_friction": "hand_friction",
    "kp_scale": "kp_scale",
    "kd_scale": "kd_scale",
    "camera_pos_offset": "camera_pos_noise",
    "camera_rot_offset_deg": "camera_rot_noise_deg",
    "camera_fov_offset_deg": "camera_fov_noise_deg",
}


def test_shipped_yaml_holds_the_paper_values():
    cfg = dr.RandomizationConfig.load()
    assert cfg == dr.RandomizationConfig()
    assert cfg.object_mass.range == (0.03, 0.1)
    assert cfg.object_friction.range == (0.5, 1.5)
    assert cfg.object_scale.range == (0.95, 1.05)
    assert cfg.object_init_pos.range == (-0.02, 0.02)
    assert cfg.object_init_yaw.range == (-0.75, 0.75)
    assert cfg.hand_friction.range == (0.5, 1.5)
    assert cfg.kp_scale.range == (0.8, 1.1)
    assert cfg.kd_scale.range == (0.7, 1.2)
    assert (cfg.object_force.scale, cfg.object_force.probability, cfg.object_force.decay,
            cfg.object_force.interval_s) == (2.0, 0.2, 0.99, 0.1)
    assert cfg.object_pos_obs_noise.std == 0.02
    assert cfg.joint_obs_noise.std == 0.4
    assert cfg.action_noise.std == 0.1
    assert cfg.frame_lag.probability == 0.1 and cfg.action_lag.probability == 0.1
    assert cfg.camera_pos_noise.range == (-0.005, 0.005)
    assert cfg.camera_rot_noise_deg.range == (-5.0, 5.0)
    assert cfg.camera_fov_noise_deg.range == (-5.0, 5.0)
    assert all(getattr(cfg, name).enabled for name in cfg.item_names())


def test_samples_stay_within_configured_ranges():
    cfg = dr.RandomizationConfig()
    s = dr.sample_episode(cfg, np.random.default_rng(0), 20000)
    for key, item in RANGE_KEYS.items():
        lo, hi = getattr(cfg, item).range
        assert s[key].shape[0] == 20000
        assert s[key].min() >= lo and s[key].max() <= hi, key
        # the whole range is used, not a corner of it
        assert s[key].min() < lo + 0.01 * (hi - lo) and s[key].max() > hi - 0.01 * (hi - lo), key
    pos = s["object_init_pos_offset"]
    assert pos.shape == (20000, 3) and np.all(pos[:, 2] == 0.0)
    assert np.abs(pos[:, :2]).max() <= 0.02 and np.abs(pos[:, :2]).max() > 0.0198


def test_disabled_items_are_identity():
    cfg = dr.RandomizationConfig.disabled()
    rng = np.random.default_rng(1)
    s = dr.sample_episode(cfg, rng, 50)
    for key in ("object_scale", "hand_friction", "kp_scale", "kd_scale", "object_friction"):
        np.testing.assert_array_equal(s[key], 1.0)
    for key in ("object_init_pos_offset", "object_init_yaw", "camera_pos_offset", "camera_rot_offset_deg",
                "camera_fov_offset_deg"):
        np.testing.assert_array_equal(s[key], 0.0)
    np.testing.assert_array_equal(s["object_mass"], cfg.object_mass.nominal)
    x = rng.normal(size=(50, 26))
    np.testing.assert_array_equal(dr.apply_obs_noise(x, cfg.joint_obs_noise, rng), x)
    np.testing.assert_array_equal(dr.apply_action_noise(x, cfg.action_noise, rng), x)
    lag = dr.LagBuffer(cfg.action_lag, 50, rng)
    for _ in range(5):
        x = rng.normal(size=(50, 26))
        np.testing.assert_array_equal(lag(x), x)
    force = dr.ObjectForce(cfg.object_force, 50, rng)
    for _ in range(20):
        np.testing.assert_array_equal(force.step(0.1, 0.05), 0.0)


def test_same_seed_same_samples_and_items_draw_independently():
    cfg = dr.RandomizationConfig()
    a = dr.sample_episode(cfg, np.random.default_rng(7), 16)
    b = dr.sample_episode(cfg, np.random.default_rng(7), 16)
    c = dr.sample_episode(cfg, np.random.default_rng(8), 16)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["object_mass"], c["object_mass"])
    # switching one item off leaves every other item's draws unchanged
    off = dataclasses.replace(cfg, object_friction=dataclasses.replace(cfg.object_friction, enabled=False))
    d = dr.sample_episode(off, np.random.default_rng(7), 16)
    for key in a:
        if key != "object_friction":
            np.testing.assert_array_equal(a[key], d[key])


def test_catalog_ranges_override_mass_and_friction():
    s = dr.sample_episode(dr.RandomizationConfig(), np.random.default_rng(2), 1000,
                          mass_range=(0.2, 0.3), friction_range=(0.9, 1.0))
    assert 0.2 <= s["object_mass"].min() and s["object_mass"].max() <= 0.3
    assert 0.9 <= s["object_friction"].min() and s["object_friction"].max() <= 1.0
    with pytest.raises(ValueError, match="mass_range must have low <= high"):
        dr.sample_episode(dr.RandomizationConfig(), np.random.default_rng(2), 4, mass_range=(0.3, 0.2))


def test_scales_vector_columns():
    s = dr.sample_episode(dr.RandomizationConfig(), np.random.default_rng(3), 5)
    v = dr.scales_vector(s)
    assert v.shape == (5, len(dr.PRIVILEGED_KEYS)) and v.dtype == np.float32
    for i, key in enumerate(dr.PRIVILEGED_KEYS):
        np.testing.assert_allclose(v[:, i], s[key], rtol=1e-6)
    del s["kd_scale"]
    with pytest.raises(ValueError, match="kd_scale"):
        dr.scales_vector(s)


def test_observation_noise_has_the_configured_std():
    rng = np.random.default_rng(4)
    x = np.zeros((4000, 26))
    noisy = dr.apply_obs_noise(x, dr.NoiseItem(True, 0.4), rng)
    assert noisy.std() == pytest.approx(0.4, rel=0.02)
    assert abs(noisy.mean()) < 0.01
    np.testing.assert_array_equal(x, 0.0)  # input untouched


def test_lag_buffer_repeats_previous_input():
    rng = np.random.default_rng(5)
    always = dr.LagBuffer(dr.LagItem(True, 1.0), 3, rng)
    first = np.array([[1.0], [2.0], [3.0]])
    np.testing.assert_array_equal(always(first), first)  # nothing to lag behind yet
    np.testing.assert_array_equal(always(first + 10), first)
    np.testing.assert_array_equal(always(first + 20), first + 10)  # a one-step delay, not a freeze
    always.reset(np.array([1]))
    np.testing.assert_array_equal(always(first + 30), [[21.0], [32.0], [23.0]])
    with pytest.raises(ValueError, match="leading dim 3"):
        always(np.zeros((2, 1)))

    sometimes = dr.LagBuffer(dr.LagItem(True, 0.1), 5000, rng)
    sometimes(np.zeros((5000, 1)))
    lagged = (sometimes(np.ones((5000, 1))) == 0.0).mean()
    assert lagged == pytest.approx(0.1, abs=0.02)


def test_object_force_magnitude_probability_and_decay():
    rng = np.random.default_rng(6)
    mass = np.full(4000, 0.05)
    proc = dr.ObjectForce(dr.ForceItem(True, 2.0, 0.2, 0.99, 0.1), 4000, rng)
    f = proc.step(0.1, mass)
    mag = np.linalg.norm(f, axis=1)
    hit = mag > 0
    assert hit.mean() == pytest.approx(0.2, abs=0.03)
    np.testing.assert_allclose(mag[hit], 2.0 * 0.05)  # scale * mass
    assert np.abs(f[hit].mean(axis=0)).max() < 0.01  # random directions

    quiet = dr.ObjectForce(dr.ForceItem(True, 2.0, 0.0, 0.99, 0.1), 2, rng)
    quiet.force[:] = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]
    np.testing.assert_allclose(quiet.step(0.1, 0.05), [[0.99, 0, 0], [0, 1.98, 0]])
    quiet.step(0.05, 0.05)
    np.testing.assert_allclose(quiet.step(0.05, 0.05), [[0.99**2, 0, 0], [0, 2 * 0.99**2, 0]])
    quiet.reset(np.array([0]))
    np.testing.assert_allclose(quiet.force[0], 0.0)
    with pytest.raises(ValueError, match="mass"):
        quiet.step(0.1, 0.0)


def test_object_force_ticks_once_per_interval_with_physics_substeps():
    rng = np.random.default_rng(7)
    proc = dr.ObjectForce(dr.ForceItem(True, 2.0, 1.0, 0.99, 0.1), 3, rng)
    for _ in range(11):  # 11/120 s: no interval boundary yet
        np.testing.assert_array_equal(proc.step(1.0 / 120.0, 0.05), 0.0)
    f = proc.step(1.0 / 120.0, 0.05)  # 12/120 s = 0.1 s
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 0.1)


def _load_with(tmp_path: Path, mutate):
    data = yaml.safe_load(paths.config_path("randomization.yaml").read_text())
    mutate(data)
    path = tmp_path / "dr.yaml"
    path.write_text(yaml.safe_dump(data))
    return dr.RandomizationConfig.load(path)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d.update(gravity_noise={"enabled": True}), "randomization: unknown key 'gravity_noise'"),
    (lambda d: d["object_mass"].update(rnage=[0, 1]), r"object_mass: unknown key 'rnage'"),
    (lambda d: d["kp_scale"].update(range=[1.2, 0.8]), r"kp_scale\.range must have low <= high"),
    (lambda d: d["kp_scale"].update(range=[1.0]), r"kp_scale\.range must be a \[low, high\] pair"),
    (lambda d: d["frame_lag"].update(probability=1.5), r"frame_lag\.probability must be <= 1"),
    (lambda d: d["object_force"].update(probability=-0.1), r"object_force\.probability must be >= 0"),
    (lambda d: d["action_noise"].update(std=-0.1), r"action_noise\.std must be >= 0"),
    (lambda d: d["action_noise"].update(std=float("nan")), r"action_noise\.std must be finite"),
    (lambda d: d["action_noise"].update(enabled="yes"), r"action_noise\.enabled must be true or false"),
    (lambda d: d["object_force"].update(interval_s=0.0), r"object_force\.interval_s must be > 0"),
    (lambda d: d["object_force"].update(min_lift=-0.01), r"object_force\.min_lift must be >= 0"),
    (lambda d: d.update(object_mass=[0.1, 0.2]), r"object_mass must be a mapping"),
    (lambda d: d.update(format="recipe_sim/randomization/v0"), "key 'format' must be"),
])
def test_config_errors_name_the_bad_key(tmp_path, mutate, match):
    with pytest.raises(ValueError, match=match):
        _load_with(tmp_path, mutate)


def test_partial_config_keeps_defaults_and_round_trips(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("format: recipe_sim/randomization/v1\njoint_obs_noise: {std: 0.01}\n"
                    "object_force: {enabled: false}\n")
    cfg = dr.RandomizationConfig.load(path)
    assert cfg.joint_obs_noise == dr.NoiseItem(True, 0.01)
    assert not cfg.object_force.enabled and cfg.object_force.scale == 2.0
    assert cfg.object_mass == dr.RandomizationConfig().object_mass
    data = cfg.to_dict()
    data.pop("format")
    assert dr.RandomizationConfig.from_dict(data) == cfg


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("object_mass: {enabled: true\n")
    with pytest.raises(ValueError, match="malformed YAML"):
        dr.RandomizationConfig.load(bad)
    with pytest.raises(FileNotFoundError):
        dr.RandomizationConfig.load(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="n_envs must be a positive integer"):
        dr.sample_episode(dr.RandomizationConfig(), np.random.default_rng(0), 0)


def test_to_dict_round_trips_through_from_dict():
    cfg = dr.RandomizationConfig.load()
    assert dr.RandomizationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="format"):
        dr.RandomizationConfig.from_dict({**cfg.to_dict(), "format": "other/v0"})


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: d["kp_scale"].update(range=[-0.5, 1.0]), r"dr.yaml: kp_scale\.range\[0\] must be in \(0, 5\]"),
    (lambda d: d["hand_friction"].update(range=[-1.0, 1]), r"hand_friction\.range\[0\] must be in \(0, 5\]"),
    (lambda d: d["object_scale"].update(range=[0, 0]), r"dr.yaml: object_scale\.range\[0\] must be in \(0,"),
    (lambda d: d["kd_scale"].update(nominal=-1.0), r"kd_scale\.nominal must be in \(0, 5\]"),
    (lambda d: d["object_init_yaw"].update(range=[-10.0, 0.0]), r"object_init_yaw\.range\[0\] must be in"),
    (lambda d: d["joint_obs_noise"].update(std=5.0), r"joint_obs_noise\.std must be <= 1"),
    (lambda d: d["object_force"].update(scale=1e12), r"object_force\.scale must be <= 50"),
    (lambda d: d["object_mass"].update(range=[0.2, 0.5]),
     r"object_mass\.range: \[0\.2, 0\.5\] would have no effect: .*objects\.yaml \(defaults\.mass_range"),
    (lambda d: d["object_friction"].update(nominal=0.3), r"friction\.nominal: 0\.3 would have no effect"),
])
def test_values_outside_their_physical_range_are_refused_naming_file_and_key(tmp_path, mutate, match):
    with pytest.raises(ConfigError, match=match):
        _load_with(tmp_path, mutate)


def test_large_exponent_floats_are_numbers(tmp_path):
    path = tmp_path / "dr.yaml"
    path.write_text("format: recipe_sim/randomization/v1\nobject_force: {scale: 1.0e12}\n")
    with pytest.raises(ConfigError, match=r"object_force\.scale must be <= 50"):  # not "must be a number"
        dr.RandomizationConfig.load(path)


def test_a_noise_range_draws_one_level_per_env_and_episode():
    item = dr.NoiseItem(True, 0.02, std_min=0.007)
    levels = dr.episode_noise_std(item, np.random.default_rng(6), 4000)
    assert levels.shape == (4000,) and 0.007 <= levels.min() and levels.max() <= 0.02
    assert levels.mean() == pytest.approx(0.0135, abs=5e-4)
    # each row gets its own level, every entry of the row the same one
    x = np.zeros((2, 20000))
    noisy = dr.apply_obs_noise(x, item, np.random.default_rng(7), np.array([0.007, 0.02]))
    assert noisy[0].std() == pytest.approx(0.007, rel=0.03)
    assert noisy[1].std() == pytest.approx(0.02, rel=0.03)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        dr.apply_action_noise(x, item, np.random.default_rng(7), np.array([0.01]))


def test_a_single_noise_level_leaves_the_draws_as_they_were():
    item = dr.NoiseItem(True, 0.02)
    rng = np.random.default_rng(8)
    np.testing.assert_array_equal(dr.episode_noise_std(item, rng, 3), 0.02)
    assert rng.random() == np.random.default_rng(8).random()  # the generator was not consumed
    x = np.ones((3, 5))
    a = dr.apply_obs_noise(x, item, np.random.default_rng(9))
    b = dr.apply_obs_noise(x, item, np.random.default_rng(9), np.full(3, 0.02))
    np.testing.assert_array_equal(a, b)


def test_a_noise_range_loads_checks_and_round_trips(tmp_path):
    path = tmp_path / "range.yaml"
    path.write_text("format: recipe_sim/randomization/v1\naction_noise: {std: 0.02, std_min: 0.00175}\n")
    cfg = dr.RandomizationConfig.load(path)
    assert cfg.action_noise == dr.NoiseItem(True, 0.02, 0.00175)
    data = cfg.to_dict()
    assert data["action_noise"]["std_min"] == 0.00175 and "std_min" not in data["joint_obs_noise"]
    assert dr.RandomizationConfig.from_dict(data) == cfg
    path.write_text("format: recipe_sim/randomization/v1\naction_noise: {std: 0.01, std_min: 0.02}\n")
    with pytest.raises(ValueError, match=r"range\.yaml.*action_noise\.std_min: 0\.02 must be <="):
        dr.RandomizationConfig.load(path)


def test_the_noise_range_profile_spans_the_degrees_and_the_low_noise_readings():
    from recipe_common.paths import config_path

    def load(name):
        return dr.RandomizationConfig.load(config_path(f"randomization_{name}.yaml"))

    span, low, degrees = load("noise_range"), load("low_noise"), load("degrees")
    for item in ("joint_obs_noise", "action_noise"):
        assert getattr(span, item).std == getattr(low, item).std
        assert getattr(span, item).std_min == getattr(degrees, item).std
    same_noise = {"joint_obs_noise": low.joint_obs_noise, "action_noise": low.action_noise}
    assert dataclasses.replace(span, **same_noise) == low
