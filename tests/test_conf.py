"""opsmgr.conf: a conf file is read alike by the server and the agent, and the backing databases' URIs a
server's conf-mms.properties names resolve the same for the server and for the backing agent on its host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsmgr.agent.backing import backing_config
from opsmgr.agent.settings import load_settings as load_agent_settings
from opsmgr.conf import ConfUnreadable, SettingsError, backing_uris, check_keys, int_in, read_properties_file
from opsmgr.errors import InvalidInput
from opsmgr.server.settings import load_conf

STORES = (
    "mongo.mongoUri=sqlite:///stores/app.sqlite\n"
    "mms.snapshotMetadataStore.uri=sqlite:///stores/../stores/snap.sqlite\n"
    "mms.oplogMetadataStore.uri=postgresql://u:p@db.example.net/oplog\n"
    "mms.blockstore.path=blocks\n"
)


def conf_file(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / "primary" / "conf-mms.properties"
    conf.parent.mkdir(exist_ok=True)
    conf.write_text(text)
    return conf


def test_the_backing_agent_resolves_the_store_uris_as_the_server_does(tmp_path: Path) -> None:
    conf = conf_file(tmp_path, STORES)
    server = load_conf(conf).backing_uris()
    assert backing_uris(conf) == server
    assert server.app == f"sqlite:///{conf.parent / 'stores' / 'app.sqlite'}"
    assert server.snapshot == f"sqlite:///{conf.parent / 'stores' / 'snap.sqlite'}"
    config = backing_config({"backing.primaryConf": str(conf)})
    assert config is not None and config.uris == server.by_name()


def test_the_same_database_twice_is_refused_by_both_naming_the_key(tmp_path: Path) -> None:
    conf = conf_file(tmp_path, STORES.replace("stores/../stores/snap.sqlite", "stores/app.sqlite"))
    for read in (backing_uris, load_conf):
        with pytest.raises(SettingsError) as info:
            read(conf)
        assert (
            "mms.snapshotMetadataStore.uri",
            "is the same database as mongo.mongoUri; the three must be different",
        ) in info.value.problems


def test_a_missing_store_uri_is_named(tmp_path: Path) -> None:
    conf = conf_file(tmp_path, "mongo.mongoUri=sqlite:///a.sqlite\n")
    with pytest.raises(SettingsError) as info:
        backing_uris(conf)
    assert [key for key, _ in info.value.problems] == [
        "mms.snapshotMetadataStore.uri",
        "mms.oplogMetadataStore.uri",
    ]


def test_an_unreadable_file_keeps_each_readers_message(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.properties"
    with pytest.raises(ConfUnreadable) as raw:
        read_properties_file(missing)
    assert raw.value.reason == "No such file or directory"
    with pytest.raises(SettingsError) as server:
        load_conf(missing)
    assert server.value.problems == (("(file)", "cannot read it: No such file or directory"),)
    with pytest.raises(InvalidInput) as agent:
        load_agent_settings(missing)
    assert agent.value.detail == f"cannot read {missing}: No such file or directory"


def test_an_agent_config_that_is_not_utf8_is_refused_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "automation-agent.config"
    path.write_bytes(b"mmsGroupId=\xff\xfe\n")
    with pytest.raises(InvalidInput, match=r"cannot read .*: not UTF-8 text"):
        load_agent_settings(path)


def test_check_keys_reports_every_problem_at_once(tmp_path: Path) -> None:
    from opsmgr.conf import Key

    keys = [Key("a.port", "port", "", None, int_in(1, 9)), Key("a.count", "count", "", "3", int_in(1, 9))]
    parsed, problems = check_keys({"a.prot": "1", "a.count": "10"}, keys, tmp_path)
    assert problems == [
        ("a.prot", "unknown key (did you mean a.port?)"),
        ("a.port", "is required"),
        ("a.count", "must be a whole number from 1 to 9, not '10'"),
    ]
    parsed, problems = check_keys({"a.port": "2"}, keys, tmp_path, given={"a.port": "4"})
    assert (parsed, problems) == ({"port": 4, "count": 3}, [])


def test_reading_a_conf_loads_no_store_engine() -> None:
    """The agent reads its own config through opsmgr.conf: that must not load SQLAlchemy or a store."""
    code = "import sys, json, opsmgr.conf, opsmgr.agent.settings; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.startswith(("sqlalchemy", "opsmgr.store"))] == []
