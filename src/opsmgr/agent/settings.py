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


class _Checker:
    """Reads keys from an agent config, collecting every problem by its key name."""

    def __init__(self, values: Mapping[str, str], base_dir: Path | None) -> None:
        self.values = values
        self.base_dir = base_dir
        self.problems: list[str] = []
        self.first_field: list[str] = []

    def text(self, key: str, default: str = "") -> str:
        return self.values.get(key, default).strip()

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{key} {text}")
        self.first_field.append(key)

    def required(self, key: str) -> str:
        value = self.text(key)
        if not value:
            self.problem(key, "is missing")
        return value

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() or self.base_dir is None else self.base_dir / p

    def base_url(self) -> str:
        base_url = self.required("mmsBaseUrl").rstrip("/")
        if base_url and not base_url.startswith(("http://", "https://")):
            self.problem("mmsBaseUrl", f"must be an http:// or https:// URL, not {base_url!r}")
        return base_url

    def driver(self) -> tuple[DriverKind | None, str | None]:
        """The driver and its simulated world (required with the sim driver)."""
        driver_text = self.text("driver", DriverKind.MONGOD.value)
        driver: DriverKind | None = None
        try:
            driver = DriverKind(driver_text)
        except ValueError:
            self.problem(
                "driver", f"must be one of {', '.join(d.value for d in DriverKind)}, not {driver_text!r}"
            )
        world_text = self.text("sim.world")
        sim_world = (
            world_text if world_text == MEMORY_WORLD else (str(p) if (p := self.path("sim.world")) else None)
        )
        if driver is DriverKind.SIM and sim_world is None:
            self.problem("sim.world", "is missing (required with driver=sim)")
        return driver, sim_world

    def poll_interval(self) -> float:
        poll_text = self.text("pollIntervalSeconds")
        if not poll_text:
            return DEFAULT_POLL_INTERVAL_S
        try:
            poll = float(poll_text)
        except ValueError:
            poll = math.nan
        if not (math.isfinite(poll) and 0 < poll <= 3600):
            self.problem(
                "pollIntervalSeconds", f"must be a number of seconds in (0, 3600], not {poll_text!r}"
            )
        return poll

    def log_level(self) -> str:
        log_level = self.text("logLevel", "INFO").upper() or "INFO"
        if log_level not in LOG_LEVELS:
            self.problem("logLevel", f"must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
        return "WARNING" if log_level == "WARN" else log_level

    def require_valid(self) -> bool:
        require_text = self.text("sslRequireValidMMSServerCertificates").lower() or "true"
        if require_text not in ("true", "false"):
            self.problem(
                "sslRequireValidMMSServerCertificates", f"must be true or false, not {require_text!r}"
            )
        return require_text != "false"

    def client_certificate(self) -> tuple[Path | None, str | None]:
        password = self.text(TLS_KEYS.client_cert_password) or None
        client_cert = self.path(TLS_KEYS.client_cert)
        if password is not None and client_cert is None:
            self.problem(TLS_KEYS.client_cert_password, f"is set but {TLS_KEYS.client_cert} is not")
        return client_cert, password


def parse_settings(
    values: Mapping[str, str], *, source: str = "automation-agent.config", base_dir: Path | None = None
) -> AgentSettings:
    """Check every key and report all problems at once, each by its key name."""
    check = _Checker(values, base_dir)
    group_id = check.required("mmsGroupId")
    api_key = check.required("mmsApiKey")
    base_url = check.base_url()
    state_dir = check.path("stateDir")
    if state_dir is None:
        check.problem("stateDir", "is missing")
    driver, sim_world = check.driver()
    poll = check.poll_interval()
    log_level = check.log_level()
    require_valid = check.require_valid()
    client_cert, password = check.client_certificate()
    if check.problems:
        raise InvalidInput(
            f"{source}: " + "; ".join(check.problems), field=check.first_field[0], rule="agent-config"
        )
    assert state_dir is not None and driver is not None
    return AgentSettings(
        group_id=group_id,
        api_key=api_key,
        base_url=base_url,
        hostname=check.text("hostname") or socket.gethostname(),
        state_dir=state_dir,
        driver=driver,
        poll_interval_s=poll,
        log_file=check.path("logFile"),
        log_level=log_level,
        sim_world=sim_world,
        mongod_binary=check.text("mongod.binary") or "mongod",
        trusted_server_ca=check.path(TLS_KEYS.ca_file),
        require_valid_server_certificates=require_valid,
        client_certificate=client_cert,
        client_certificate_password=password,
    )


def load_settings(path: Path) -> AgentSettings:
    try:
        values = read_properties_file(path)
    except ConfUnreadable as exc:
        raise InvalidInput(f"cannot read {path}: {exc.reason}", field="config") from exc
    return parse_settings(values, source=str(path), base_dir=path.resolve().parent)
