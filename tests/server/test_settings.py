import stat
from pathlib import Path

import pytest

import opsmgr.server.settings as settings_module
from opsmgr.errors import InvalidInput, PreflightFailure
from opsmgr.properties import load_properties
from opsmgr.server.settings import (
    CONF_NAME,
    KEYS,
    KEYS_BY_NAME,
    SettingsError,
    embedded_defaults,
    load_conf,
    load_settings,
    parse_settings,
)
from opsmgr.store.crypto import GenKey
from tests.server.settings_cases import BASE, MINIMAL


def problems_of(values, **kw):
    with pytest.raises(SettingsError) as info:
        parse_settings(values, base_dir=BASE, **kw)
    return dict(info.value.problems), info.value


def test_every_key_is_documented_in_the_module_docstring_and_has_a_description():
    doc = settings_module.__doc__
    for key in KEYS:
        assert f"``{key.name}``" in doc
        assert key.description
    assert (
        "mms.centralUrl" in KEYS_BY_NAME
        and "URL to Access Ops Manager" in KEYS_BY_NAME["mms.centralUrl"].description
    )


def test_defaults_and_relative_paths():
    s = parse_settings(MINIMAL, base_dir=BASE)
    assert (s.listen_address, s.port) == ("127.0.0.1", 8080)
    assert s.central_url == "http://127.0.0.1:8080"
    assert s.app_db_uri == "sqlite:////srv/opsmgr/app.sqlite"
    assert s.blockstore_path == Path("/srv/opsmgr/blocks")
    assert s.gen_key_path == Path("/srv/opsmgr/gen.key")
    assert s.restoration_mode_enabled is True
    assert s.agent_poll_interval_s == 10
    assert s.alert_webhook_url is None
    assert s.log_level == "INFO"
    assert (s.oplog_max_mb, s.oplog_max_age_hours) == (512, 168)


def test_explicit_values():
    s = parse_settings(
        {
            **MINIMAL,
            "mongo.mongoUri": "postgresql://ops:secret@db1:5432/appdb",
            "mms.listenAddress": "::1",
            "mms.port": "9090",
            "mms.centralUrl": "https://opsmgr.example.com:8443/",
            "mms.genKeyPath": "/etc/mongodb-mms/gen.key",
            "mms.restorationMode.enabled": "FALSE",
            "mms.agent.pollIntervalSeconds": "0.5",
            "mms.alerts.webhook.url": "http://127.0.0.1:9999/hook",
            "mms.logLevel": "warn",
            "mms.store.oplogMaxSizeMB": "64",
            "mms.store.oplogMaxAgeHours": "1.5",
        },
        base_dir=Path("/srv"),
    )
    assert s.app_db_uri == "postgresql://ops:secret@db1:5432/appdb"
    assert s.central_url == "https://opsmgr.example.com:8443"
    assert (s.listen_address, s.port) == ("::1", 9090)
    assert s.gen_key_path == Path("/etc/mongodb-mms/gen.key")
    assert s.restoration_mode_enabled is False
    assert s.agent_poll_interval_s == 0.5
    assert s.alert_webhook_url == "http://127.0.0.1:9999/hook"
    assert s.log_level == "WARNING"
    assert (s.oplog_max_mb, s.oplog_max_age_hours) == (64, 1.5)
    assert "secret" not in s.describe()


def test_derived_central_url_brackets_ipv6():
    s = parse_settings({**MINIMAL, "mms.listenAddress": "::1", "mms.port": "81"}, base_dir=Path("/x"))
    assert s.central_url == "http://[::1]:81"


def test_port_override():
    s = parse_settings({**MINIMAL, "mms.port": "1234"}, base_dir=Path("/x"), port=4321)
    assert s.port == 4321


def test_all_problems_are_reported_by_name():
    problems, err = problems_of(
        {
            "mms.port": "80a",
            "mms.centralUrl": "ftp://nowhere",
            "mms.restorationMode.enabled": "yes",
            "mms.listenAddress": "bad host!",
            "mms.agent.pollIntervalSeconds": "nan",
            "mms.logLevel": "LOUD",
            "mms.alerts.webhook.url": "http://host:99999/",
            "mms.prot": "1",
            "totally.unknown": "x",
        }
    )
    assert set(problems) == {
        "mms.port",
        "mms.centralUrl",
        "mms.restorationMode.enabled",
        "mms.listenAddress",
        "mms.agent.pollIntervalSeconds",
        "mms.logLevel",
        "mms.alerts.webhook.url",
        "mms.prot",
        "totally.unknown",
        "mongo.mongoUri",
        "mms.snapshotMetadataStore.uri",
        "mms.oplogMetadataStore.uri",
        "mms.blockstore.path",
    }
    assert "did you mean mms.port?" in problems["mms.prot"]
    assert problems["totally.unknown"] == "unknown key"
    assert problems["mongo.mongoUri"] == "is required"
    assert "'80a'" in problems["mms.port"]
    assert isinstance(err, PreflightFailure)
    for name in problems:
        assert name in err.detail
    assert err.detail.startswith("conf-mms.properties has 13 problems")


@pytest.mark.parametrize("port", ["0", "65536", "-1", "8080.0", " "])
def test_bad_ports(port):
    values = {**MINIMAL, "mms.port": port}
    if port.strip():
        problems, _ = problems_of(values)
        assert list(problems) == ["mms.port"]
    else:
        assert parse_settings(values, base_dir=Path("/x")).port == 8080, "blank means the default"


def test_override_port_is_validated_too():
    problems, _ = problems_of(MINIMAL, port=70000)
    assert list(problems) == ["mms.port"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("mongodb://h:27017/", "not mongodb"),
        ("not a uri", "not a database URI"),
        ("sqlite://", "in-memory"),
        ("sqlite:///:memory:", "in-memory"),
        ("postgresql://h:5432", "must name the database"),
    ],
)
def test_bad_store_uris(uri, message):
    problems, _ = problems_of({**MINIMAL, "mongo.mongoUri": uri})
    assert message in problems["mongo.mongoUri"]


def test_the_three_databases_must_differ():
    problems, _ = problems_of(
        {
            **MINIMAL,
            "mongo.mongoUri": "postgresql://a@db:5432/one",
            "mms.snapshotMetadataStore.uri": "postgres://b@DB/one",
            "mms.oplogMetadataStore.uri": "sqlite:///app.sqlite",
        }
    )
    assert "same database as mongo.mongoUri" in problems["mms.snapshotMetadataStore.uri"]
    assert "mms.oplogMetadataStore.uri" not in problems


def test_same_sqlite_file_spelled_two_ways():
    problems, _ = problems_of({**MINIMAL, "mms.oplogMetadataStore.uri": "sqlite:////srv/opsmgr/./app.sqlite"})
    assert "same database as mongo.mongoUri" in problems["mms.oplogMetadataStore.uri"]


def test_load_conf_reads_a_file_relative_to_itself(tmp_path):
    conf = tmp_path / "etc" / CONF_NAME
    conf.parent.mkdir()
    conf.write_text(
        "# a comment\n" + "".join(f"{k}={v}\n" for k, v in MINIMAL.items()) + "mms.port = 9000\n",
        encoding="utf-8",
    )
    s = load_conf(conf)
    assert s.conf_path == conf
    assert s.app_db_uri == f"sqlite:///{tmp_path}/etc/app.sqlite"
    assert s.port == 9000


def test_load_conf_problems_name_the_file(tmp_path):
    conf = tmp_path / CONF_NAME
    conf.write_text("mms.port=x\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_conf(conf)
    assert str(conf) in info.value.detail


def test_load_conf_syntax_error_names_the_line(tmp_path):
    conf = tmp_path / CONF_NAME
    conf.write_text("mms.port=8080\nmms.logLevel=\\uZZ\n", encoding="utf-8")
    with pytest.raises(SettingsError) as info:
        load_conf(conf)
    assert f"{conf}:2" in info.value.detail


def test_missing_conf_file(tmp_path):
    with pytest.raises(SettingsError, match="cannot read it"):
        load_settings(conf_path=tmp_path / "nope.properties")


def test_embedded_defaults_create_a_working_setup(tmp_path):
    data = tmp_path / "data"
    s, summary = embedded_defaults(data, port=8123)
    assert s.conf_path == data / CONF_NAME
    assert s.port == 8123
    assert s.central_url == "http://127.0.0.1:8123"
    assert s.app_db_uri == f"sqlite:///{data}/appdb.sqlite"
    assert s.snapshot_store_uri == f"sqlite:///{data}/snapshotdb.sqlite"
    assert s.oplog_store_uri == f"sqlite:///{data}/oplogdb.sqlite"
    assert s.blockstore_path == data / "blockstore" and s.blockstore_path.is_dir()
    assert s.gen_key_path == data / "gen.key"
    assert stat.S_IMODE(s.gen_key_path.stat().st_mode) == 0o600
    assert GenKey.load(s.gen_key_path)
    for where in (str(data), "appdb.sqlite", "blockstore", "gen.key", "Created", "new gen.key"):
        assert where in summary
    written = load_properties(s.conf_path)
    assert written["mongo.mongoUri"] == "sqlite:///appdb.sqlite", "relative, so the data dir can move"
    assert written["mms.port"] == "8123"
    text = s.conf_path.read_text()
    for key in KEYS:
        assert key.name in text, "every key is documented in the written file"


def test_embedded_defaults_are_reused(tmp_path):
    first, _ = embedded_defaults(tmp_path)
    check = GenKey.load(first.gen_key_path).check_value()
    again, summary = embedded_defaults(tmp_path, port=9999)
    assert again.port == 9999, "--port overrides for this run"
    assert load_properties(again.conf_path)["mms.port"] == "8080", "without rewriting the file"
    assert GenKey.load(again.gen_key_path).check_value() == check
    assert "Using the embedded setup" in summary


def test_embedded_defaults_keep_an_existing_gen_key(tmp_path):
    key = GenKey.create(tmp_path / "gen.key")
    s, summary = embedded_defaults(tmp_path)
    assert GenKey.load(s.gen_key_path).check_value() == key.check_value()
    assert "the gen.key already there" in summary


def test_embedded_setup_with_a_broken_conf_reports_it(tmp_path):
    embedded_defaults(tmp_path)
    conf = tmp_path / CONF_NAME
    conf.write_text(conf.read_text() + "mms.bogus=1\n")
    with pytest.raises(SettingsError, match=r"mms\.bogus"):
        load_settings(data_dir=tmp_path)


def test_load_settings_dispatch(tmp_path):
    s, summary = load_settings(data_dir=tmp_path / "d", port=8555)
    assert s.port == 8555 and "Created" in summary
    s2, summary2 = load_settings(conf_path=s.conf_path)
    assert s2.app_db_uri == s.app_db_uri and s2.port == 8555, "a new setup records the chosen port"
    assert str(s.conf_path) in summary2
    with pytest.raises(InvalidInput, match="not both"):
        load_settings(conf_path=s.conf_path, data_dir=tmp_path)
    with pytest.raises(InvalidInput, match="--data-dir"):
        load_settings()


def test_settings_are_frozen():
    s = parse_settings(MINIMAL, base_dir=Path("/x"))
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_maintenance_policy_defaults_are_the_procedures():
    from opsmgr.maintenance.snapshot import Policy

    assert parse_settings(MINIMAL, base_dir=Path("/x")).maintenance_policy() == Policy()


def test_maintenance_policy_from_the_conf_keys():
    values = {
        **MINIMAL,
        "mms.maintenance.leaseTtlSeconds": "30",
        "mms.maintenance.memberTimeoutSeconds": "6.5",
        "mms.maintenance.electionTimeoutSeconds": "20",
        "mms.maintenance.catchUpLagSeconds": "0",
        "mms.maintenance.oplogMargin": "3",
        "mms.maintenance.defaultOutSeconds": "5",
        "mms.maintenance.stepDownSeconds": "10",
        "mms.maintenance.secondaryCatchUpPeriodSeconds": "5",
        "mms.maintenance.portOffset": "20000",
    }
    policy = parse_settings(values, base_dir=Path("/x")).maintenance_policy()
    assert (policy.lease_ttl_s, policy.member_timeout_s, policy.election_timeout_s) == (30, 6.5, 20)
    assert (policy.catch_up_lag_s, policy.oplog_margin, policy.default_out_s) == (0, 3, 5)
    assert (policy.step_down_secs, policy.secondary_catch_up_period_secs) == (10, 5)
    assert policy.maintenance_port_offset == 20000


def test_bad_maintenance_values_are_refused_by_key():
    problems, _ = problems_of(
        {
            **MINIMAL,
            "mms.maintenance.leaseTtlSeconds": "0",
            "mms.maintenance.oplogMargin": "lots",
            "mms.maintenance.stepDownSeconds": "1.5",
            "mms.maintenance.memberTimeoutSecs": "6",
        }
    )
    assert "must be a number from 1 to 3600" in problems["mms.maintenance.leaseTtlSeconds"]
    assert "'lots'" in problems["mms.maintenance.oplogMargin"]
    assert "whole number" in problems["mms.maintenance.stepDownSeconds"]
    typo = problems["mms.maintenance.memberTimeoutSecs"]
    assert "did you mean mms.maintenance.memberTimeoutSeconds" in typo


def test_catch_up_period_must_be_shorter_than_the_step_down():
    problems, _ = problems_of(
        {
            **MINIMAL,
            "mms.maintenance.stepDownSeconds": "10",
            "mms.maintenance.secondaryCatchUpPeriodSeconds": "10",
        }
    )
    assert problems == {
        "mms.maintenance.secondaryCatchUpPeriodSeconds": "must be less than mms.maintenance.stepDownSeconds "
        "(10), not 10"
    }


def test_a_bad_maintenance_key_stops_the_server_naming_it(tmp_path):
    from tests.procs import run_cli

    conf = tmp_path / CONF_NAME
    conf.write_text(
        "\n".join(f"{k}={v}" for k, v in MINIMAL.items()) + "\nmms.maintenance.memberTimeoutSeconds=-1\n"
    )
    done = run_cli("server", "--conf", str(conf), "--port", "1")
    assert done.returncode != 0
    assert "mms.maintenance.memberTimeoutSeconds" in done.stdout + done.stderr


def test_a_scheduled_drill_needs_all_its_keys():
    some = {**MINIMAL, "mms.backup.drill.genKeyPath": "primary-gen.key"}
    problems, _ = problems_of(some)
    assert set(problems) == {
        "mms.backup.drill.primaryUrl",
        "mms.backup.drill.primaryPublicKey",
        "mms.backup.drill.primaryPrivateKey",
    }
    every = {
        **some,
        "mms.backup.drill.primaryUrl": "https://primary.example:8443",
        "mms.backup.drill.primaryPublicKey": "abcdefgh",
        "mms.backup.drill.primaryPrivateKey": "secret",
    }
    s = parse_settings(every, base_dir=BASE)
    assert s.drill_gen_key_path == (BASE / "primary-gen.key").resolve()
    assert (s.drill_primary_url, s.drill_primary_private_key) == ("https://primary.example:8443", "secret")
    assert parse_settings(MINIMAL, base_dir=BASE).drill_gen_key_path is None


def test_scale_out_keys_reach_the_server_config():
    from opsmgr.server.boot import server_config

    s = parse_settings(
        {
            **MINIMAL,
            "mms.server.roles": " daemon ",
            "mms.server.jobLeaseSeconds": "4",
            "mms.maintenance.sharded.parallelShards": "2",
            "mms.blockstore.uri": "postgresql://ops:secret@db1:5432/blocks",
        },
        base_dir=BASE,
    )
    config = server_config(s, GenKey.generate())
    assert config.roles == frozenset({"daemon"}) and config.job_lease_s == 4.0
    assert config.sharded_policy.parallel_shards == 2
    assert config.blockstore_uri == "postgresql://ops:secret@db1:5432/blocks"
    assert "secret" not in s.describe()
    problems, _ = problems_of(
        {
            **MINIMAL,
            "mms.server.roles": "api,web",
            "mms.server.jobLeaseSeconds": "0",
            "mms.maintenance.sharded.parallelShards": "0",
            "mms.blockstore.uri": "sqlite:///blocks.db",
        }
    )
    assert set(problems) == {
        "mms.server.roles",
        "mms.server.jobLeaseSeconds",
        "mms.maintenance.sharded.parallelShards",
        "mms.blockstore.uri",
    }
    assert "api, daemon or both" in problems["mms.server.roles"]
