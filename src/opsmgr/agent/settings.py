"""The agent's own configuration: ``automation-agent.config`` in Java-properties format.

Owns the meaning of its keys: the real agent's ``mmsGroupId``, ``mmsApiKey``, ``mmsBaseUrl``, ``logFile`` and
``logLevel``, plus opsmgr's ``hostname``, ``stateDir``, ``driver``, ``sim.world``, ``mongod.binary`` and
``pollIntervalSeconds``. Relative paths are taken relative to the config file's directory, so a fleet's
per-host directories are self-contained. Unknown keys are ignored (real agent configs carry many).

HTTPS to the server, with the real agent's keys:

=========================================  ===================================================  ==========
``sslTrustedMMSServerCertificate``         PEM file of the CA(s) that signed the server's       the system's
                                           certificate (a private CA); only these are trusted   CAs
``sslRequireValidMMSServerCertificates``   verify the server's certificate and name             ``true``
                                           (``false`` only for tests: anyone could answer)
``sslMMSServerClientCertificate``          PEM file with this agent's client certificate and    none
                                           key, for a server whose
                                           ``mms.https.ClientCertificateMode`` asks for one
``sslMMSServerClientCertificatePassword``  password of that key, if it is encrypted             none
=========================================  ===================================================  ==========

The files are read when the agent starts (``opsmgr.tls``); one that cannot be read stops it, naming the key.
May import ``opsmgr.errors``, ``opsmgr.conf``, ``opsmgr.properties`` and ``opsmgr.tls``.
"""

from __future__ import annotations

import math
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from opsmgr.conf import ConfUnreadable, read_properties_file
from opsmgr.errors import InvalidInput
from opsmgr.properties import dump_properties
from opsmgr.tls import Setting, client_verify

DEFAULT_POLL_INTERVAL_S = 10.0
MEMORY_WORLD = ":memory:"  # sim.world value: a world that lives in this process only (a fleet shares one)
LOG_FILE_NAME = "automation-agent.log"
LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
TLS_KEYS = Setting(
    ca_file="sslTrustedMMSServerCertificate",
    client_cert="sslMMSServerClientCertificate",
    client_cert_password="sslMMSServerClientCertificatePassword",
)


class DriverKind(StrEnum):
    SIM = "sim"
    MONGOD = "mongod"


@dataclass(frozen=True)
class AgentSettings:
    group_id: str
    api_key: str
    base_url: str
    hostname: str
    state_dir: Path
    driver: DriverKind
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    log_file: Path | None = None
    log_level: str = "INFO"
    sim_world: str | None = None  # a SimWorld SQLite file, or MEMORY_WORLD
    mongod_binary: str = "mongod"
    trusted_server_ca: Path | None = None
    require_valid_server_certificates: bool = True
    client_certificate: Path | None = None
    client_certificate_password: str | None = None

    @property
    def log_path(self) -> Path:
        return self.log_file if self.log_file is not None else self.state_dir / LOG_FILE_NAME

    def http_verify(self) -> ssl.SSLContext | bool:
        """``httpx``'s ``verify=`` for the server; raises InvalidInput naming the key of a bad file."""
        return client_verify(
            self.trusted_server_ca,
            self.require_valid_server_certificates,
            client_cert=self.client_certificate,
            client_cert_password=self.client_certificate_password,
            names=TLS_KEYS,
        )

    def to_properties(self) -> dict[str, str]:
        """The keys that reproduce these settings, for writing an ``automation-agent.config``."""
        values = {
            "mmsGroupId": self.group_id,
            "mmsApiKey": self.api_key,
            "mmsBaseUrl": self.base_url,
            "hostname": self.hostname,
            "stateDir": str(self.state_dir),
            "driver": self.driver.value,
            "pollIntervalSeconds": repr(self.poll_interval_s),
            "logLevel": self.log_level,
            "mongod.binary": self.mongod_binary,
        }
        if self.log_file is not None:
            values["logFile"] = str(self.log_file)
        if self.sim_world is not None:
            values["sim.world"] = self.sim_world
        if not self.require_valid_server_certificates:
            values["sslRequireValidMMSServerCertificates"] = "false"
        optional = {
            TLS_KEYS.ca_file: self.trusted_server_ca,
            TLS_KEYS.client_cert: self.client_certificate,
            TLS_KEYS.client_cert_password: self.client_certificate_password,
        }
        values.update({key: str(value) for key, value in optional.items() if value is not None})
        return values


def render_settings(settings: AgentSettings) -> str:
    return dump_properties(settings.to_properties(), header="automation-agent.config written by opsmgr")


def parse_settings(
    values: Mapping[str, str], *, source: str = "automation-agent.config", base_dir: Path | None = None
) -> AgentSettings:
    """Check every key and report all problems at once, each by its key name."""
    problems: list[str] = []
    first_field: list[str] = []

    def problem(key: str, text: str) -> None:
        problems.append(f"{key} {text}")
        first_field.append(key)

    def required(key: str) -> str:
        value = values.get(key, "").strip()
        if not value:
            problem(key, "is missing")
        return value

    def path(key: str) -> Path | None:
        value = values.get(key, "").strip()
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    group_id = required("mmsGroupId")
    api_key = required("mmsApiKey")
    base_url = required("mmsBaseUrl").rstrip("/")
    if base_url and not base_url.startswith(("http://", "https://")):
        problem("mmsBaseUrl", f"must be an http:// or https:// URL, not {base_url!r}")

    state_dir = path("stateDir")
    if state_dir is None:
        problem("stateDir", "is missing")

    driver_text = values.get("driver", DriverKind.MONGOD.value).strip()
    driver: DriverKind | None = None
    try:
        driver = DriverKind(driver_text)
    except ValueError:
        problem("driver", f"must be one of {', '.join(d.value for d in DriverKind)}, not {driver_text!r}")

    world_text = values.get("sim.world", "").strip()
    sim_world = world_text if world_text == MEMORY_WORLD else (str(p) if (p := path("sim.world")) else None)
    if driver is DriverKind.SIM and sim_world is None:
        problem("sim.world", "is missing (required with driver=sim)")

    poll_text = values.get("pollIntervalSeconds", "").strip()
    poll = DEFAULT_POLL_INTERVAL_S
    if poll_text:
        try:
            poll = float(poll_text)
        except ValueError:
            poll = math.nan
        if not (math.isfinite(poll) and 0 < poll <= 3600):
            problem("pollIntervalSeconds", f"must be a number of seconds in (0, 3600], not {poll_text!r}")

    log_level = values.get("logLevel", "INFO").strip().upper() or "INFO"
    if log_level not in LOG_LEVELS:
        problem("logLevel", f"must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")

    require_text = values.get("sslRequireValidMMSServerCertificates", "").strip().lower() or "true"
    if require_text not in ("true", "false"):
        problem("sslRequireValidMMSServerCertificates", f"must be true or false, not {require_text!r}")
    password = values.get(TLS_KEYS.client_cert_password, "").strip() or None
    client_cert = path(TLS_KEYS.client_cert)
    if password is not None and client_cert is None:
        problem(TLS_KEYS.client_cert_password, f"is set but {TLS_KEYS.client_cert} is not")

    if problems:
        raise InvalidInput(f"{source}: " + "; ".join(problems), field=first_field[0], rule="agent-config")
    assert state_dir is not None and driver is not None
    return AgentSettings(
        group_id=group_id,
        api_key=api_key,
        base_url=base_url,
        hostname=values.get("hostname", "").strip() or socket.gethostname(),
        state_dir=state_dir,
        driver=driver,
        poll_interval_s=poll,
        log_file=path("logFile"),
        log_level="WARNING" if log_level == "WARN" else log_level,
        sim_world=sim_world,
        mongod_binary=values.get("mongod.binary", "").strip() or "mongod",
        trusted_server_ca=path(TLS_KEYS.ca_file),
        require_valid_server_certificates=require_text != "false",
        client_certificate=client_cert,
        client_certificate_password=password,
    )


def load_settings(path: Path) -> AgentSettings:
    try:
        values = read_properties_file(path)
    except ConfUnreadable as exc:
        raise InvalidInput(f"cannot read {path}: {exc.reason}", field="config") from exc
    return parse_settings(values, source=str(path), base_dir=path.resolve().parent)
