"""Config: file over defaults, overrides over both, typos and wrong types rejected."""
import dataclasses
import pickle
import tomllib

import pytest

from mantis import config


def test_file_and_overrides_apply_with_types(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text("[master]\napi_port = 9001\n[workers]\nheartbeat_timeout_s = 4.5\n")
    c = config.load(str(path), ["store.path=/tmp/x", "workers.backoff_steps_s=[0, 1]", "master.local_agent=false"])
    assert c["master"]["api_port"] == 9001 and c["workers"]["heartbeat_timeout_s"] == 4.5
    assert c["store"]["path"] == "/tmp/x" and c["workers"]["backoff_steps_s"] == (0, 1)
    assert c["master"]["local_agent"] is False and c["scheduler"]["agent_timeout_s"] == 5.0


def test_shipped_config_matches_builtin_defaults():
    assert config.load("conf/master.toml") == config.load(None)


def test_shipped_config_lists_every_setting_with_its_default_and_nothing_else():
    with open("conf/master.toml", "rb") as f:
        shipped = tomllib.load(f)
    defaults = config.Config().to_dict()
    assert list(shipped) == list(defaults)
    for section, values in defaults.items():
        assert list(shipped[section]) == list(values), section
        for key, value in values.items():
            # Same value and same type: ``10`` where the default is ``10.0`` is a drift too.
            assert (shipped[section][key], type(shipped[section][key])) == (value, type(value)), f"{section}.{key}"


def test_config_is_frozen_reads_as_attributes_or_mapping_and_pickles():
    c = config.load(None, ["master.shards=2"])
    assert c.master.shards == c["master"]["shards"] == c["master"].get("shards") == 2
    assert "shards" in c.master and c["master"].get("nope", 7) == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.master.shards = 3
    assert pickle.loads(pickle.dumps(c)) == c
    fenced = c.replace("store", lease_node="/mantis/leader/n-1", lease_version=3)
    assert fenced.store.lease_version == 3 and c.store.lease_version == 0 and fenced.master == c.master


def test_to_dict_is_the_plain_json_view_of_every_section():
    d = config.load(None).to_dict()
    assert set(d) == {"master", "store", "leader_election", "workers", "scheduler", "agent", "announce", "access", "mesos"}
    assert d["workers"]["backoff_steps_s"] == [0, 5, 10, 30, 60, 120, 600] and d["agent"]["attributes"] == {}
    assert all(type(v) is dict for v in d.values())


@pytest.mark.parametrize("override,message", [
    ("master.api_prot=1", "unknown setting master.api_prot"),
    ("nosection.x=1", "unknown section"),
    ("novalue", "section.key=value"),
    ("master.api_port=high", "master.api_port must be an integer, not 'high'"),
    ("master.local_agent=1", "master.local_agent must be true or false"),
    ("scheduler.resource_manager=yarn", "scheduler.resource_manager must be one of agents, mesos, not 'yarn'"),
    ("workers.backoff_steps_s=[\"a\"]", "must be a list of numbers"),
    ("agent.attributes={zone=1}", "must be a table of strings"),
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


def test_a_file_with_a_wrong_type_names_the_file_and_the_setting(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('[workers]\nheartbeat_timeout_s = "soon"\n')
    with pytest.raises(config.ConfigError, match=r"m.toml: setting workers.heartbeat_timeout_s must be a number"):
        config.load(str(path))
