"""The rules of the automation config's ``auth``, ``tls`` and ``ssl`` sections: mechanisms, the keyfile and
its content, the users wanted, what enabling authentication needs, and client certificate modes.

Pure functions over plain JSON values. May import ``opsmgr.errors``, ``opsmgr.automation.rules`` and
``opsmgr.automation.secrets``.
"""

from __future__ import annotations

import re
from typing import Any

from opsmgr.automation.rules import (
    AUTH_MECHANISMS,
    CLIENT_CERTIFICATE_MODES,
    PASSWORD_MECHANISMS,
    check_fields,
    fail,
    objects,
    one_of,
    require,
)
from opsmgr.automation.secrets import REDACTED

_USER_FIELDS = {"user": "string", "db": "string", "roles": "array"}
_KEYFILE_CHARS = re.compile(r"[A-Za-z0-9+/=]*")
_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:[\\/]")


def check_auth(auth: dict[str, Any]) -> None:
    auth.setdefault("disabled", False)  # Ops Manager's documented default when auth is given
    for key in ("autoAuthMechanisms", "deploymentAuthMechanisms"):
        for i, mechanism in enumerate(auth.get(key, [])):
            one_of(mechanism, AUTH_MECHANISMS, f"auth.{key}[{i}]", "auth-mechanism")
    if "autoAuthMechanism" in auth:
        one_of(auth["autoAuthMechanism"], AUTH_MECHANISMS, "auth.autoAuthMechanism", "auth-mechanism")
    keyfile = auth.get("keyfile", "/")
    if not (isinstance(keyfile, str) and (keyfile.startswith("/") or _WINDOWS_ABSOLUTE.match(keyfile))):
        fail("auth.keyfile", "auth-keyfile", "auth.keyfile must be an absolute path")
    keyfile_content = auth.get("key")
    if isinstance(keyfile_content, str) and keyfile_content != REDACTED:
        content = "".join(keyfile_content.split())
        if not (6 <= len(content) <= 1024 and _KEYFILE_CHARS.fullmatch(content)):
            fail("auth.key", "auth-key", "auth.key must be 6 to 1024 base64 characters, as mongod requires")
    for here, user in objects(auth.get("usersWanted", []), "auth.usersWanted"):
        require(user, "user", here)
        require(user, "db", here)
        check_fields(user, _USER_FIELDS, here)
    if auth["disabled"]:
        return
    # The single ``autoAuthMechanism`` is derived from the list in Ops Manager: it counts only without one.
    mechanisms = set(auth.get("autoAuthMechanisms", []))
    if not mechanisms and "autoAuthMechanism" in auth:
        mechanisms.add(auth["autoAuthMechanism"])
    if not mechanisms:
        fail(
            "auth.autoAuthMechanisms",
            "auth-mechanism-required",
            "with authentication enabled the agent needs at least one mechanism",
        )
    for needed in ("key", "keyfile"):
        if not auth.get(needed):
            fail(
                f"auth.{needed}",
                "auth-keyfile-required",
                "with authentication enabled, key and keyfile are needed",
            )
    if mechanisms & PASSWORD_MECHANISMS:
        for needed in ("autoUser", "autoPwd"):
            if not auth.get(needed):
                fail(
                    f"auth.{needed}",
                    "auth-auto-user",
                    "password authentication needs the agent's autoUser and autoPwd",
                )


def check_tls(config: dict[str, Any]) -> None:
    for section in ("tls", "ssl"):
        tls = config.get(section)
        if tls is None or "clientCertificateMode" not in tls:
            continue
        mode = tls["clientCertificateMode"]
        one_of(
            mode, CLIENT_CERTIFICATE_MODES, f"{section}.clientCertificateMode", "tls-client-certificate-mode"
        )
        if mode == "REQUIRE" and not tls.get("CAFilePath"):
            fail(f"{section}.CAFilePath", "tls-ca-file", "clientCertificateMode REQUIRE needs CAFilePath")
