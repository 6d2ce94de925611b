"""The rules of the automation config's auth and TLS sections: one case per rule, each naming its id and the
field."""

from __future__ import annotations

from typing import Any

import pytest

from opsmgr.errors import InvalidInput
from tests.automation.configs import (
    DELETE,
    Case,
    check_case,
)

CASES: list[Case] = [
    ("auth-mechanism", ("auth.autoAuthMechanisms[0]", "SCRAM-SHA-512"), "auth-mechanism", None),
    ("auth-mechanism-single", ("auth.autoAuthMechanism", "NONE"), "auth-mechanism", None),
    ("deployment-mechanism", ("auth.deploymentAuthMechanisms[1]", 1), "auth-mechanism", None),
    (
        "auth-mechanism-required",
        lambda c: (c["auth"].update(autoAuthMechanisms=[]), c["auth"].pop("autoAuthMechanism")),
        "auth-mechanism-required",
        "auth.autoAuthMechanisms",
    ),
    ("auth-keyfile-relative", ("auth.keyfile", "keyfile"), "auth-keyfile", None),
    ("auth-keyfile-null", ("auth.keyfile", None), "auth-keyfile", None),
    ("auth-key-short", ("auth.key", "abc"), "auth-key", None),
    ("auth-key-charset", ("auth.key", "not base64 at all!"), "auth-key", None),
    ("auth-key-missing", ("auth.key", DELETE), "auth-keyfile-required", None),
    ("auth-keyfile-missing", ("auth.keyfile", DELETE), "auth-keyfile-required", None),
    ("auth-auto-user", ("auth.autoUser", DELETE), "auth-auto-user", None),
    ("auth-auto-pwd", ("auth.autoPwd", ""), "auth-auto-user", None),
    (
        "tls-client-certificate-mode",
        ("tls.clientCertificateMode", "MAYBE"),
        "tls-client-certificate-mode",
        None,
    ),
    (
        "tls-ca-file",
        lambda c: c["tls"].update(clientCertificateMode="REQUIRE", CAFilePath=""),
        "tls-ca-file",
        "tls.CAFilePath",
    ),
]


@pytest.mark.parametrize(("mutation", "rule", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_rule_names_its_id_and_field(mutation: Any, rule: str, field: str | None) -> None:
    check_case(mutation, rule, field)


def test_the_derived_single_mechanism_does_not_ask_for_a_password_user() -> None:
    """Ops Manager derives ``autoAuthMechanism`` from ``autoAuthMechanisms``; a typed client puts back the one
    it read (``MONGODB-CR`` when the list was empty), so with x.509 alone no automation password is needed."""
    from opsmgr.automation.config import validate
    from tests.automation.configs import base

    config = base()
    config["auth"].update(autoAuthMechanisms=["MONGODB-X509"], autoAuthMechanism="MONGODB-CR")
    del config["auth"]["autoPwd"]
    validate(config)
    config["auth"].update(autoAuthMechanisms=[], autoAuthMechanism="SCRAM-SHA-256")
    with pytest.raises(InvalidInput) as caught:
        validate(config)
    assert caught.value.rule == "auth-auto-user"
