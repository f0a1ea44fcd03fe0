"""Config: file over defaults, overrides over both, typos rejected."""
import pytest

from mantis import config


def test_file_and_overrides_apply_with_types(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("[master]\napi_port = 9001\n[workers]\nheartbeat_timeout_s = 4.5\n")
    c = config.load(str(path), ["store.path=/tmp/x", "workers.backoff_steps_s=[0, 1]", "master.local_agent=false"])
    assert c["master"]["api_port"] == 9001 and c["workers"]["heartbeat_timeout_s"] == 4.5
    assert c["store"]["path"] == "/tmp/x" and c["workers"]["backoff_steps_s"] == [0, 1]
    assert c["master"]["local_agent"] is False and c["scheduler"]["agent_timeout_s"] == 5.0


def test_shipped_config_matches_builtin_defaults():
    assert config.load("conf/master.toml") == config.load(None)


@pytest.mark.parametrize("override,message", [
    ("master.api_prot=1", "unknown setting master.api_prot"),
    ("nosection.x=1", "unknown section"),
    ("novalue", "section.key=value"),
])
def test_bad_overrides_are_rejected(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load(None, [override])


def test_unreadable_or_invalid_file_is_a_clear_error(tmp_path):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[master\n")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(str(bad))


def test_high_availability_example_config_elects_and_shares_a_zookeeper_store():
    ha = config.load("conf/ha-master.toml")
    assert ha["leader_election"]["hosts"] == ha["store"]["hosts"] and ha["store"]["type"] == "zookeeper"
    assert ha["master"]["local_agent"] is False
    # Everything else is the default.
    assert ha["workers"] == config.load(None)["workers"]
