import pytest

from selfbake.config import parse_override, resolve
from selfbake.errors import UserError
from selfbake.generate import GenerateConfig


def test_precedence_yaml_then_flags_then_overrides(tmp_path):
    cfg = tmp_path / "g.yaml"
    cfg.write_text("model: random:llama-tiny\nprompt: hi\ntemperature: 0.3\nmax_new_tokens: 9\nn: 2\n")
    config = resolve(
        GenerateConfig, config_file=cfg, flags={"temperature": 0.9, "n": None}, overrides=["max_new_tokens=4"]
    )
    assert config.temperature == 0.9  # flag beats YAML
    assert config.max_new_tokens == 4  # override beats YAML
    assert config.n == 2  # unset flag keeps YAML


def test_unknown_key_suggests_closest(tmp_path):
    with pytest.raises(
        UserError, match="unknown config key 'temprature' in overrides; did you mean 'temperature'"
    ):
        resolve(GenerateConfig, flags={"model": "m", "prompt": "p"}, overrides=["temprature=0.1"])
    cfg = tmp_path / "g.yaml"
    cfg.write_text("model: m\nprompt: p\nmax_new_token: 3\n")
    with pytest.raises(UserError, match="'max_new_token' in .*did you mean 'max_new_tokens'"):
        resolve(GenerateConfig, config_file=cfg)


def test_malformed_and_non_mapping_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="malformed YAML in .*line"):
        resolve(GenerateConfig, config_file=bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="must hold a mapping"):
        resolve(GenerateConfig, config_file=listy)
    with pytest.raises(UserError, match="cannot read config file"):
        resolve(GenerateConfig, config_file=tmp_path / "missing.yaml")


def test_validation_messages():
    with pytest.raises(UserError, match="max_new_tokens: Input should be greater than 0"):
        resolve(GenerateConfig, flags={"model": "m", "prompt": "p", "max_new_tokens": 0})
    assert resolve(GenerateConfig, flags={"prompt": "p"}).model == "bundled"  # the default model
    from selfbake.cli import ReportConfig

    with pytest.raises(UserError, match="missing required setting 'run_dir'"):
        resolve(ReportConfig, flags={})
    with pytest.raises(UserError, match="empty prompt"):
        resolve(GenerateConfig, flags={"model": "m", "prompt": "  "})


def test_override_values_are_typed():
    assert parse_override("n=3") == ("n", 3)
    assert parse_override("stop=[a, b]") == ("stop", ["a", "b"])
    assert parse_override("system=") == ("system", "")
    assert parse_override("max-new-tokens=5") == ("max_new_tokens", 5)
    with pytest.raises(UserError, match="key=value"):
        parse_override("nonsense")
