import numpy as np
import pytest

from recipe_common.config import (
    ConfigError,
    as_float,
    as_int,
    as_list,
    as_range,
    as_str,
    as_vector,
    check_keys,
    key_values,
    load_yaml,
    parse_yaml,
    require_keys,
)


def test_exponent_floats_are_numbers_not_strings():
    data = parse_yaml("a: 1e9\nb: 1.0e12\nc: -2.5E-3\nd: 12\ne: '1e9'\nf: 0.5\n")
    assert data == {"a": 1e9, "b": 1e12, "c": -2.5e-3, "d": 12, "e": "1e9", "f": 0.5}
    assert isinstance(data["d"], int)


def test_duplicate_keys_and_syntax_errors_name_the_file(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("a: 1\na: 2\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: malformed YAML: .*duplicate key 'a'"):
        load_yaml(p)
    p.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match=r"x\.yaml: malformed YAML"):
        load_yaml(p)


def test_empty_missing_and_wrong_format_files(tmp_path):
    p = tmp_path / "empty.yaml"
    p.write_text("")
    with pytest.raises(ConfigError, match=r"empty\.yaml: the file is empty"):
        load_yaml(p)
    with pytest.raises(FileNotFoundError, match=r"nope\.yaml"):
        load_yaml(tmp_path / "nope.yaml")
    p.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(p)
    p.write_text("format: other/v1\n")
    with pytest.raises(ConfigError, match=r"key 'format' must be 'mine/v1', got 'other/v1'"):
        load_yaml(p, "mine/v1")


def test_keys_are_checked_by_dotted_path():
    with pytest.raises(ConfigError, match=r"a\.b: unknown key 'z'"):
        check_keys({"x": 1, "z": 2}, ["x"], "a.b")
    with pytest.raises(ConfigError, match=r"a: missing required key 'y'"):
        require_keys({"x": 1}, "a", {"x", "y"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        check_keys([1], ["x"], "a")


@pytest.mark.parametrize("call, match", [
    (lambda: as_float("1", "k"), "k must be a number"),
    (lambda: as_float(True, "k"), "k must be a number"),
    (lambda: as_float(float("nan"), "k"), "k must be finite"),
    (lambda: as_float(0.0, "k", positive=True), "k must be > 0"),
    (lambda: as_float(-1.0, "k", nonnegative=True), "k must be >= 0"),
    (lambda: as_float(2.0, "k", 0.0, 1.0), "k must be <= 1.0"),
    (lambda: as_int(1.5, "k"), "k must be an integer"),
    (lambda: as_int(10**9, "k", maximum=100), "k must be <= 100"),
    (lambda: as_range([2, 1], "k"), "low <= high"),
    (lambda: as_range([-1, 1], "k", minimum=0.0), r"k\[0\] must be >= 0.0"),
    (lambda: as_vector([1, 2], "k", 3), "list of 3 numbers"),
    (lambda: as_str("x", "k", choices=["a", "b"]), r"k must be one of \['a', 'b'\]"),
    (lambda: as_list([1, True], "k", int), r"k\[1\] must be a int"),
])
def test_values_are_typed_and_bounded(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_good_values_pass_through():
    assert as_float(3, "k", positive=True) == 3.0
    assert as_range([0.5, 1.5], "k", minimum=0.0) == (0.5, 1.5)
    np.testing.assert_array_equal(as_vector([1, 2, 3], "k", 3), [1.0, 2.0, 3.0])
    assert issubclass(ConfigError, ValueError)


def test_command_line_overrides_read_values_as_yaml_and_name_the_option():
    assert key_values(["a.b=0.02", "c=true", "d=[1, 2]", "e=x=y"], "--set") == {
        "a.b": 0.02, "c": True, "d": [1, 2], "e": "x=y"
    }
    with pytest.raises(ConfigError, match="--runtime 'decay': expected KEY=VALUE"):
        key_values(["decay"], "--runtime")
    with pytest.raises(ConfigError, match="--set k: malformed YAML"):
        key_values(["k=[1,"], "--set")
