"""Where the automation config's secrets live: redaction, restoring redacted secrets by identity, and mapping
them (gen.key) without touching anything else."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmgr.automation import secrets as sc
from opsmgr.automation.config import processes_by_name
from tests.automation.configs import (
    Case,
    _process,
    _set,
    base,
    check_case,
)


def test_secret_paths_find_every_secret_of_the_base() -> None:
    redacted = sc.redact(base())
    fields = sc.redacted_fields(redacted)
    assert set(fields) == {
        "auth.key",
        "auth.autoPwd",
        "auth.usersWanted[0].initPwd",
        "ldap.bindQueryPassword",
        "processes[0].args2_6.net.tls.certificateKeyFilePassword",
        "processes[1].args2_6.net.tls.certificateKeyFilePassword",
        "processes[2].args2_6.net.tls.certificateKeyFilePassword",
    }
    text = json.dumps(redacted)
    for secret in ("agent-password", "app-password", "ldap-password", "pem-0", base()["auth"]["key"]):
        assert secret not in text
    assert sc.redacted_fields(base()) == []


def test_secret_paths_are_well_formed() -> None:
    for path in sc.SECRET_PATHS:
        assert re.fullmatch(
            r"[A-Za-z0-9_]+(\[[A-Za-z_]+(,[A-Za-z_]+)*\])?(\.[A-Za-z0-9_]+(\[[A-Za-z_,]+\])?)*", path
        )
        assert not path.endswith("]"), "a secret is a string field, not a list"


def test_fill_redacted_matches_list_elements_by_identity() -> None:
    source = base()
    uploaded = sc.redact(base())
    uploaded["processes"].reverse()
    uploaded["processes"].append(_process(5, rs="new"))
    uploaded["processes"][-1]["args2_6"]["net"]["tls"]["certificateKeyFilePassword"] = sc.REDACTED
    filled = sc.fill_redacted(uploaded, source)
    by_name = processes_by_name(filled)
    assert [by_name[f"rs0-{i}"]["args2_6"]["net"]["tls"]["certificateKeyFilePassword"] for i in range(3)] == [
        "pem-0",
        "pem-1",
        "pem-2",
    ]
    assert sc.redacted_fields(filled) == ["processes[3].args2_6.net.tls.certificateKeyFilePassword"]
    assert uploaded["auth"]["key"] == sc.REDACTED, "fill_redacted must not mutate its argument"


def test_fill_redacted_keeps_values_that_are_not_the_marker() -> None:
    uploaded = base()
    uploaded["auth"]["autoPwd"] = "rotated-by-agent"
    assert sc.fill_redacted(uploaded, base())["auth"]["autoPwd"] == "rotated-by-agent"


def test_map_secrets_touches_only_secrets() -> None:
    config = base()
    mapped = sc.map_secrets(config, lambda s: "enc:" + s)
    assert config == base()
    assert mapped["auth"]["autoPwd"] == "enc:agent-password"
    assert mapped["auth"]["autoUser"] == "mms-automation"
    assert mapped["processes"][0]["args2_6"]["net"]["tls"]["certificateKeyFile"] == "/etc/ssl/host.pem"


secrets = st.text(max_size=12).filter(lambda s: s != sc.REDACTED)


@st.composite
def configs_with_secrets(draw: Any) -> dict[str, Any]:
    config = base()
    for slot_path in sc.redacted_fields(sc.redact(config)):
        _set(config, slot_path, draw(secrets))
    if draw(st.booleans()):
        config["tls"]["autoPEMKeyFilePwd"] = draw(secrets)
    if draw(st.booleans()):
        config["processes"][1]["args2_6"]["security"]["kmip"] = {"clientCertificatePassword": draw(secrets)}
    if draw(st.booleans()):
        config["processes"][2]["backupRestoreUrl"] = draw(secrets)
    users = draw(st.integers(0, 3))
    config["auth"]["usersWanted"] = [
        {
            "db": "admin",
            "user": f"u{i}",
            "roles": [],
            "initPwd": draw(secrets),
            "scramSha256Creds": {
                "iterationCount": 15000,
                "salt": "c2FsdA==",
                "storedKey": draw(secrets),
                "serverKey": draw(secrets),
            },
        }
        for i in range(users)
    ]
    return config


@settings(max_examples=150, deadline=None)
@given(configs_with_secrets(), st.randoms())
def test_secrets_round_trip(config: dict[str, Any], rnd: Any) -> None:
    original = copy.deepcopy(config)
    encrypted = sc.map_secrets(config, lambda s: "enc:" + s[::-1])
    assert sc.map_secrets(encrypted, lambda s: s.removeprefix("enc:")[::-1]) == config
    assert config == original

    present: list[str] = []
    sc.map_secrets(config, lambda s: present.append(s) or s)
    redacted = sc.redact(config)
    assert len(sc.redacted_fields(redacted)) == len(present)
    left: list[str] = []
    sc.map_secrets(redacted, lambda s: left.append(s) or s)
    assert left == [sc.REDACTED] * len(present)
    rnd.shuffle(redacted["processes"])
    rnd.shuffle(redacted["auth"]["usersWanted"])
    filled = sc.fill_redacted(redacted, config)
    assert sc.redacted_fields(filled) == []
    assert processes_by_name(filled) == processes_by_name(config)
    key = lambda u: (u["db"], u["user"])  # noqa: E731
    assert sorted(filled["auth"]["usersWanted"], key=key) == sorted(config["auth"]["usersWanted"], key=key)


CASES: list[Case] = [
    ("secret-redacted", ("auth.usersWanted[0].initPwd", sc.REDACTED), "secret-redacted", None),
    ("keyfile-redacted", ("auth.key", sc.REDACTED), "secret-redacted", None),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)
