"""Server configuration: flags > environment > file > defaults, and errors that name key and value."""

from __future__ import annotations

import math

import pytest

from depthcloud.errors import ConfigError
from depthcloud.serve.config import ServeConfig, load_config


def test_defaults():
    cfg = load_config({}, environ={})
    assert cfg == ServeConfig()
    assert (cfg.host, cfg.port, cfg.decimation, cfg.frame, cfg.token) == ("127.0.0.1", 8787, 2, "optical", None)
    assert math.isinf(cfg.max_depth_m)


def test_precedence_flags_over_env_over_file(tmp_path):
    f = tmp_path / "serve.yaml"
    f.write_text("port: 9000\ndecimation: 3\nvoxel_m: 0.01\nframe: zup\n")
    env = {"DEPTHCLOUD_PORT": "9100", "DEPTHCLOUD_DECIMATION": "4", "DEPTHCLOUD_DATA": "ignored"}
    cfg = load_config({"port": 9200, "decimation": None}, config_file=f, environ=env)
    assert cfg.port == 9200  # flag
    assert cfg.decimation == 4  # env (the flag was not given)
    assert cfg.voxel_m == 0.01 and cfg.frame == "zup"  # file


def test_config_file_from_environment_and_toml_section(tmp_path):
    f = tmp_path / "depthcloud.toml"
    f.write_text('[serve]\nsource = "synthetic:64x48@10"\ntemporal = true\nmax_clients = 3\n')
    cfg = load_config({}, environ={"DEPTHCLOUD_CONFIG": str(f)})
    assert (cfg.source, cfg.temporal, cfg.max_clients) == ("synthetic:64x48@10", True, 3)


@pytest.mark.parametrize("text, value", [("yes", True), ("0", False), ("off", False), ("TRUE", True)])
def test_env_booleans(text, value):
    assert load_config({}, environ={"DEPTHCLOUD_TEMPORAL": text}).temporal is value


@pytest.mark.parametrize("key, value, match", [
    ("port", "eighty", r"key 'port': expected an integer 0..65535, got 'eighty'"),
    ("port", 70000, r"key 'port': expected an integer 0..65535, got 70000"),
    ("decimation", 9, r"key 'decimation': expected an integer 1..8, got 9"),
    ("decimation", True, r"key 'decimation': expected an integer 1..8, got True"),
    ("frame", "ros", r"key 'frame': expected one of optical, zup, opengl, got 'ros'"),
    ("max_depth_m", 0, r"key 'max_depth_m': expected a number > 0, got 0"),
    ("voxel_m", -1, r"key 'voxel_m': expected a number >= 0, got -1"),
    ("temporal", "maybe", r"key 'temporal': expected true or false, got 'maybe'"),
    ("max_message_mb", "nan", r"key 'max_message_mb'"),
])
def test_bad_values_name_key_value_and_origin(key, value, match):
    with pytest.raises(ConfigError, match=match + r".*\(from command line\)"):
        load_config({key: value}, environ={})


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match=r"key 'port': .*got 'x' \(from environment DEPTHCLOUD_PORT\)"):
        load_config({}, environ={"DEPTHCLOUD_PORT": "x"})


def test_depth_range_order():
    with pytest.raises(ConfigError, match=r"min_depth_m 3.0 exceeds max_depth_m 1.0"):
        ServeConfig(min_depth_m=3, max_depth_m=1)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"missing.yaml: cannot read the config file"):
        load_config({}, config_file=tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("port: 1\nport2: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+: not valid YAML"):
        load_config({}, config_file=bad, environ={})
    unknown = tmp_path / "u.yaml"
    unknown.write_text("prot: 1\n")
    with pytest.raises(ConfigError, match=r"u.yaml: key 'prot': unknown key; known keys: source, host"):
        load_config({}, config_file=unknown, environ={})
    listy = tmp_path / "l.toml"
    listy.write_text("port = [\n")
    with pytest.raises(ConfigError, match=r"l.toml: not valid TOML"):
        load_config({}, config_file=listy, environ={})
    fileval = tmp_path / "v.yaml"
    fileval.write_text("port: -5\n")
    with pytest.raises(ConfigError, match=r"key 'port': expected an integer 0..65535, got -5 \(from .*v.yaml\)"):
        load_config({}, config_file=fileval, environ={})


def test_unknown_flag_key():
    with pytest.raises(ConfigError, match="key 'colour': unknown key"):
        load_config({"colour": 1}, environ={})
