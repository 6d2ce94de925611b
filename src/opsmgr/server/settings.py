"""The configuration of one ``opsmgr server``: ``conf-mms.properties`` (Java properties) as :class:`Settings`.

Owns the documented keys below, their defaults and validation, and the embedded default setup that
``opsmgr server --data-dir DIR`` creates when there is no configuration file. Every unknown key, missing
required key and malformed value is reported by name, all at once, as a :class:`SettingsError` (a
:class:`~opsmgr.errors.PreflightFailure`), before anything starts. Relative paths, including the path of a
``sqlite:///`` URI, are relative to the directory of the configuration file.

=================================  =====================================================  ===================
key                                meaning                                                default
=================================  =====================================================  ===================
``mms.listenAddress``              address (IP or host name) the HTTP server binds to     ``127.0.0.1``
``mms.port``                       TCP port of the HTTP server (1-65535)                  ``8080``
``mms.centralUrl``                 the "URL to Access Ops Manager": the base URL agents   ``http(s)://<listen
                                   and links use (http or https)                          address>:<port>``
``mongo.mongoUri``                 URI of the application database (``sqlite:///FILE``   required
                                   or ``postgresql://USER:PASSWORD@HOST:PORT/DB``)
``mms.snapshotMetadataStore.uri``  URI of the snapshot metadata store                     required
``mms.oplogMetadataStore.uri``     URI of the oplog metadata store                        required
``mms.blockstore.path``            directory that holds snapshot blocks (and, with a      required
                                   ``mms.blockstore.uri``, the daemon's working files)
``mms.blockstore.uri``             a PostgreSQL database holding the blocks instead, so   empty: the folder
                                   several servers share them (``postgresql://...``)
``mms.genKeyPath``                 the 24-byte key that encrypts sensitive fields         ``gen.key``
``mms.restorationMode.enabled``    enter Restoration Mode when an agent reports a newer   ``true``
                                   config than the restored one (``true``/``false``)
``mms.drill.sandbox``              a drill's sandbox: no notification, no backup, no      ``false``
                                   secondary watch (``opsmgr drill`` sets it)
``mms.backup.drill.intervalDays``  on a secondary: days without a passing restore drill   ``7``
                                   before BACKUP_DRILL_OVERDUE
``mms.agent.pollIntervalSeconds``  seconds between an agent's polls for its config        ``10``
``mms.server.roles``               what this server does: ``api`` (public API, UI, agent  ``api,daemon``
                                   API), ``daemon`` (the periodic jobs), or both
``mms.server.jobLeaseSeconds``     a periodic job's lease: servers sharing the databases  ``10``
                                   take over a silent holder's jobs after it
``mms.alerts.webhook.url``         URL alerts are POSTed to as JSON                       empty: none
``mms.logLevel``                   ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``          ``INFO``
``mms.store.oplogMaxSizeMB``       cap of each backing database's oplog by size (MB)      ``512``
``mms.store.oplogMaxAgeHours``     cap of each backing database's oplog by age (hours)    ``168``
=================================  =====================================================  ===================

HTTPS, with Ops Manager's keys (``opsmgr.server.tls`` builds the TLS context and refuses to start, naming
the key, when a file is missing or unreadable or the password does not decrypt the key). With a PEM key file
the server serves HTTPS only, on ``mms.port``, and ``mms.centralUrl`` defaults to ``https://``:

=====================================  ==================================================  =========
key                                    meaning                                             default
=====================================  ==================================================  =========
``mms.https.PEMKeyFile``               PEM file with the server's certificate (chain) and  empty:
                                       its private key: serve HTTPS                        HTTP
``mms.https.PEMKeyFilePassword``       password of that private key, if it is encrypted    empty
``mms.https.CAFile``                   PEM file of the CA(s) whose client certificates     empty
                                       the server accepts; the server then asks clients
                                       for one and refuses any it cannot verify
``mms.https.ClientCertificateMode``    who must present a client certificate signed by     ``none``
                                       ``mms.https.CAFile``: ``none``, ``agents_only``
                                       (every ``/agents/`` request) or ``required``
                                       (every connection); the last two need the CA file
=====================================  ==================================================  =========

Backup: the codec of new blocks, and the alert thresholds (see ``opsmgr.backup.alerts``):

=====================================================  ==========================================  ========
key                                                    meaning                                     default
=====================================================  ==========================================  ========
``mms.blockstore.compression``                         codec of new snapshot blocks:               ``zstd``
                                                       ``zstd[:1-19]``, ``zlib[:1-9]``, ``none``
``mms.backup.alerts.snapshotGraceMinutes``             a snapshot this late after its interval is  ``60``
                                                       missed
``mms.backup.alerts.oplogLagSeconds``                  acknowledged oplog this far behind the      ``60``
                                                       source: OPLOG_BEHIND
``mms.backup.alerts.windowStallMinutes``               window end this far behind the source's     ``15``
                                                       newest entry: not advancing
``mms.backup.alerts.agentSilenceMinutes``              no agent contact this long:                 ``5``
                                                       BACKUP_AGENT_DOWN
``mms.backup.alerts.secondaryUnreachableSeconds``      on a primary: its secondary failing its     ``60``
                                                       readiness probe this long is the global
                                                       alert BACKUP_SECONDARY_UNREACHABLE
``mms.backup.alerts.capacityDays``                     the blockstore's disk projected full        ``14``
                                                       within this many days: the global alert
                                                       BACKUP_BLOCKSTORE_FILLING
=====================================================  ==========================================  ========

Rolling maintenance and supervised unique index builds: the procedure's timeouts and margins, one setting
for every agent of a project (``opsmgr.maintenance.snapshot.Policy``):

=====================================================  ==========================================  ========
key                                                    meaning                                     default
=====================================================  ==========================================  ========
``mms.maintenance.leaseTtlSeconds``                    life of a maintenance lease between its     ``120``
                                                       holder's renewals
``mms.maintenance.memberTimeoutSeconds``               a member not healthy this long after its    ``600``
                                                       restart in replSet mode has failed
``mms.maintenance.electionTimeoutSeconds``             longest wait for an election after a        ``60``
                                                       step-down
``mms.maintenance.catchUpLagSeconds``                  a secondary this close to the primary is    ``2``
                                                       caught up
``mms.maintenance.oplogMargin``                        the oplog window must exceed a member's     ``2``
                                                       estimated time out by this factor
``mms.maintenance.defaultOutSeconds``                  a member's estimated time out before any    ``300``
                                                       restart was observed
``mms.maintenance.stepDownSeconds``                    ``replSetStepDown``'s ``stepDownSecs``      ``60``
``mms.maintenance.secondaryCatchUpPeriodSeconds``      ``replSetStepDown``'s                       ``10``
                                                       ``secondaryCatchUpPeriodSecs`` (less than
                                                       ``stepDownSeconds``)
``mms.maintenance.portOffset``                         a member is standalone on its port plus     ``10000``
                                                       this (minus, past 65535)
``mms.maintenance.alertWindowSeconds``                 a rolling change opens a maintenance        ``0``
                                                       window (HOST, REPLICA_SET, AGENT) this
                                                       long, closed when it ends; 0: none
``mms.maintenance.sharded.parallelShards``             shards of a sharded cluster rolled at once  ``1``
=====================================================  ==========================================  ========

A secondary runs a restore drill of each backing-database deployment on its own (``server.drill_schedule``)
when all four of these are set:

======================================  ==================================================  =========
key                                     meaning                                             default
======================================  ==================================================  =========
``mms.backup.drill.genKeyPath``         a copy of the primary's gen.key                     empty
``mms.backup.drill.primaryUrl``         the primary's URL (its live configurations)         empty
``mms.backup.drill.primaryPublicKey``   a primary key that reads its projects               empty
``mms.backup.drill.primaryPrivateKey``  its private part                                    empty
======================================  ==================================================  =========

The ``mms.maintenance.*`` keys are ``server.maintenance_keys``', the several servers' ``server.scale_keys``'.
The three backing databases must be three different databases. May import
``opsmgr.server.maintenance_keys``, ``opsmgr.server.scale_keys``, ``opsmgr.jsontypes``,
``opsmgr.errors``, ``opsmgr.conf``, ``opsmgr.properties``, ``opsmgr.store``, ``opsmgr.backup.alerts`` and
``opsmgr.backup.blockstore`` (for the backup settings' types), ``opsmgr.maintenance.snapshot`` (the
maintenance policy, a pure value) and SQLAlchemy's URL parser; nothing of the web framework."""

from __future__ import annotations

import dataclasses
import os
import socket
import textwrap
from enum import StrEnum
from pathlib import Path

import sqlalchemy as sa

from opsmgr import conf
from opsmgr.backup.alerts import AlertPolicy
from opsmgr.backup.blockstore import Compression
from opsmgr.conf import Key
from opsmgr.conf import SettingsError as SettingsError  # its home is opsmgr.conf
from opsmgr.errors import InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.maintenance.snapshot import Policy
from opsmgr.properties import dump_properties
from opsmgr.server.maintenance_keys import MAINTENANCE_KEYS
from opsmgr.server.scale_keys import ROLES, SCALE_KEYS
from opsmgr.store.backing import APP, BACKING, OPLOG, SNAPSHOT, BackingStores
from opsmgr.store.crypto import GenKey

CONF_NAME = "conf-mms.properties"
EMBEDDED_STORES = {b.conf_key: b.embedded_file for b in BACKING}
EMBEDDED_BLOCKSTORE = "blockstore"
DEFAULT_PORT = 8080


def _compression(text: str, _base: Path) -> Compression:
    return Compression.parse(text)


class ClientCertificateMode(StrEnum):
    """``mms.https.ClientCertificateMode``: who must present a client certificate (Ops Manager's values)."""

    NONE = "none"
    AGENTS_ONLY = "agents_only"
    REQUIRED = "required"


def _client_certificate_mode(text: str, _base: Path) -> ClientCertificateMode:
    try:
        return ClientCertificateMode(text.lower())
    except ValueError:
        allowed = ", ".join(m.value for m in ClientCertificateMode)
        raise ValueError(f"must be one of {allowed}, not {text!r}") from None


KEYS: tuple[Key, ...] = (
    Key(
        name="mms.listenAddress",
        attr="listen_address",
        description="Address (IP or host name) the HTTP server binds to.",
        default="127.0.0.1",
        parse=conf.host,
    ),
    Key(
        name="mms.port",
        attr="port",
        description="TCP port of the HTTP server.",
        default=str(DEFAULT_PORT),
        parse=conf.int_in(1, 65535),
    ),
    Key(
        name="mms.centralUrl",
        attr="central_url",
        description='The "URL to Access Ops Manager": the base URL agents and links use. '
        "Empty: http://<listen address>:<port>.",
        default="",
        parse=conf.http_url,
    ),
    Key(
        name=APP.conf_key,
        attr="app_db_uri",
        description="URI of the application database: sqlite:///FILE (relative to this file's directory) "
        "or postgresql://USER:PASSWORD@HOST:PORT/DATABASE.",
        default=None,
        parse=conf.store_uri,
    ),
    Key(
        name=SNAPSHOT.conf_key,
        attr="snapshot_store_uri",
        description="URI of the snapshot metadata store (a different database from the other two).",
        default=None,
        parse=conf.store_uri,
    ),
    Key(
        name=OPLOG.conf_key,
        attr="oplog_store_uri",
        description="URI of the oplog metadata store (a different database from the other two).",
        default=None,
        parse=conf.store_uri,
    ),
    Key(
        name="mms.blockstore.path",
        attr="blockstore_path",
        description="Directory that holds snapshot blocks.",
        default=None,
        parse=conf.relative_path,
    ),
    Key(
        name="mms.genKeyPath",
        attr="gen_key_path",
        description="The 24-byte gen.key that encrypts sensitive fields. Keep a copy with your backups.",
        default="gen.key",
        parse=conf.relative_path,
    ),
    Key(
        name="mms.restorationMode.enabled",
        attr="restoration_mode_enabled",
        description="Enter Restoration Mode when an agent reports a config newer than the restored one "
        "(true or false).",
        default="true",
        parse=conf.boolean,
    ),
    Key(
        name="mms.drill.sandbox",
        attr="drill_sandbox",
        description="A drill's sandbox (true or false): it delivers no notification, backs nothing up and "
        "watches no secondary, so it never touches production.",
        default="false",
        parse=conf.boolean,
    ),
    Key(
        name="mms.backup.drill.intervalDays",
        attr="drill_interval_days",
        description="On a secondary: days after which a backing-database deployment without a passing "
        "restore drill raises BACKUP_DRILL_OVERDUE.",
        default="7",
        parse=conf.float_in(0.0001, 3650),
    ),
    Key(
        name="mms.agent.pollIntervalSeconds",
        attr="agent_poll_interval_s",
        description="Seconds between an agent's polls for its automation config.",
        default="10",
        parse=conf.float_in(0.1, 3600),
    ),
    Key(
        name="mms.alerts.webhook.url",
        attr="alert_webhook_url",
        description="URL alerts are POSTed to as JSON; empty for none.",
        default="",
        parse=conf.http_url,
    ),
    Key(
        name="mms.logLevel",
        attr="log_level",
        description="Log level: DEBUG, INFO, WARNING or ERROR.",
        default="INFO",
        parse=conf.log_level,
    ),
    Key(
        name="mms.store.oplogMaxSizeMB",
        attr="oplog_max_mb",
        description="Cap of each backing database's oplog by size, in MB.",
        default="512",
        parse=conf.int_in(1, 1024 * 1024),
    ),
    Key(
        name="mms.store.oplogMaxAgeHours",
        attr="oplog_max_age_hours",
        description="Cap of each backing database's oplog by age, in hours.",
        default="168",
        parse=conf.float_in(0.01, 24 * 3650),
    ),
    Key(
        name="mms.blockstore.compression",
        attr="block_compression",
        description="Codec of new snapshot blocks: zstd[:1-19], zlib[:1-9] or none. Blocks already written "
        "keep theirs and stay readable.",
        default="zstd:1",
        parse=_compression,
    ),
    Key(
        name="mms.backup.alerts.snapshotGraceMinutes",
        attr="alert_snapshot_grace_min",
        description="Minutes past a source's snapshot interval after which BACKUP_SNAPSHOT_MISSED opens.",
        default="60",
        parse=conf.float_in(0.001, 60 * 24 * 365),
    ),
    Key(
        name="mms.backup.alerts.oplogLagSeconds",
        attr="alert_oplog_lag_s",
        description="Seconds the acknowledged oplog may be behind the source before OPLOG_BEHIND opens.",
        default="60",
        parse=conf.float_in(0.1, 86400 * 30),
    ),
    Key(
        name="mms.backup.alerts.windowStallMinutes",
        attr="alert_window_stall_min",
        description="Minutes the point-in-time window's end may lag the source's newest entry before "
        "BACKUP_PITR_WINDOW_NOT_ADVANCING opens.",
        default="15",
        parse=conf.float_in(0.001, 60 * 24 * 365),
    ),
    Key(
        name="mms.backup.alerts.agentSilenceMinutes",
        attr="alert_agent_silence_min",
        description="Minutes without any agent reaching the backup daemon for a source before "
        "BACKUP_AGENT_DOWN opens.",
        default="5",
        parse=conf.float_in(0.001, 60 * 24 * 365),
    ),
    Key(
        name="mms.backup.alerts.secondaryUnreachableSeconds",
        attr="alert_secondary_unreachable_s",
        description="On a primary with a secondary (opsmgr secondary attach): seconds the secondary may fail "
        "its readiness probe before the global alert BACKUP_SECONDARY_UNREACHABLE opens.",
        default="60",
        parse=conf.float_in(0.1, 86400 * 30),
    ),
    Key(
        name="mms.backup.alerts.capacityDays",
        attr="alert_capacity_days",
        description="Days: when the capacity projection (opsmgr backup capacity) says the blockstore's disk "
        "fills within this many, the global alert BACKUP_BLOCKSTORE_FILLING opens.",
        default="14",
        parse=conf.float_in(0.0, 3650),
    ),
)


HTTPS_KEYS: tuple[Key, ...] = (
    Key(
        name="mms.https.PEMKeyFile",
        attr="https_pem_key_file",
        description="PEM file with this server's TLS certificate (and chain) and its private key: the server "
        "then serves HTTPS only. Empty: HTTP.",
        default="",
        parse=conf.relative_path,
    ),
    Key(
        name="mms.https.PEMKeyFilePassword",
        attr="https_pem_key_file_password",
        description="Password of the private key in mms.https.PEMKeyFile, if it is encrypted.",
        default="",
        parse=conf.as_text,
    ),
    Key(
        name="mms.https.CAFile",
        attr="https_ca_file",
        description="PEM file of the certificate authorities whose client certificates this server accepts; "
        "set, the server asks clients for a certificate and refuses one it cannot verify.",
        default="",
        parse=conf.relative_path,
    ),
    Key(
        name="mms.https.ClientCertificateMode",
        attr="https_client_certificate_mode",
        description="Who must present a client certificate signed by mms.https.CAFile: none, agents_only "
        "(every agent request) or required (every connection).",
        default=ClientCertificateMode.NONE.value,
        parse=_client_certificate_mode,
    ),
)
DRILL_KEYS: tuple[Key, ...] = (
    Key(
        name="mms.backup.drill.genKeyPath",
        attr="drill_gen_key_path",
        description="On a secondary: a copy of its primary's gen.key. With the three primary keys below set, "
        "the secondary runs a restore drill of each backing-database deployment every "
        "mms.backup.drill.intervalDays. Empty: drills run only on demand (opsmgr drill run).",
        default="",
        parse=conf.relative_path,
    ),
    Key(
        name="mms.backup.drill.primaryUrl",
        attr="drill_primary_url",
        description="On a secondary: the primary's URL, whose live configurations a drill must reconcile to.",
        default="",
        parse=conf.http_url,
    ),
    Key(
        name="mms.backup.drill.primaryPublicKey",
        attr="drill_primary_public_key",
        description="On a secondary: a programmatic API key of the primary that reads its projects.",
        default="",
        parse=conf.as_text,
    ),
    Key(
        name="mms.backup.drill.primaryPrivateKey",
        attr="drill_primary_private_key",
        description="Its private part.",
        default="",
        parse=conf.as_text,
    ),
)

KEYS = KEYS + MAINTENANCE_KEYS + HTTPS_KEYS + DRILL_KEYS + SCALE_KEYS
KEYS_BY_NAME = {k.name: k for k in KEYS}


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    listen_address: str
    port: int
    central_url: str
    app_db_uri: str
    snapshot_store_uri: str
    oplog_store_uri: str
    blockstore_path: Path
    gen_key_path: Path
    restoration_mode_enabled: bool
    drill_sandbox: bool
    drill_interval_days: float
    agent_poll_interval_s: float
    alert_webhook_url: str | None
    log_level: str
    oplog_max_mb: int
    oplog_max_age_hours: float
    block_compression: Compression
    alert_snapshot_grace_min: float
    alert_oplog_lag_s: float
    alert_window_stall_min: float
    alert_agent_silence_min: float
    alert_secondary_unreachable_s: float
    alert_capacity_days: float
    maintenance_lease_ttl_s: float
    maintenance_member_timeout_s: float
    maintenance_election_timeout_s: float
    maintenance_catch_up_lag_s: float
    maintenance_oplog_margin: float
    maintenance_default_out_s: float
    maintenance_step_down_secs: int
    maintenance_secondary_catch_up_period_secs: int
    maintenance_maintenance_port_offset: int
    maintenance_alert_window_s: float
    maintenance_sharded_parallel_shards: int = 1
    https_pem_key_file: Path | None = None
    https_pem_key_file_password: str | None = None
    https_ca_file: Path | None = None
    https_client_certificate_mode: ClientCertificateMode = ClientCertificateMode.NONE
    drill_gen_key_path: Path | None = None
    drill_primary_url: str | None = None
    drill_primary_public_key: str | None = None
    drill_primary_private_key: str | None = None
    conf_path: Path | None = None
    blockstore_uri: str | None = None
    server_roles: frozenset[str] = ROLES
    job_lease_s: float = 10.0

    @property
    def https(self) -> bool:
        return self.https_pem_key_file is not None

    def maintenance_policy(self) -> Policy:
        return Policy(**{f: getattr(self, f"maintenance_{f}") for f in Policy.__dataclass_fields__})

    def backup_alert_policy(self) -> AlertPolicy:
        return AlertPolicy(
            grace_ms=round(self.alert_snapshot_grace_min * 60_000),
            lag_ms=round(self.alert_oplog_lag_s * 1000),
            stall_ms=round(self.alert_window_stall_min * 60_000),
            silent_ms=round(self.alert_agent_silence_min * 60_000),
            secondary_unreachable_ms=round(self.alert_secondary_unreachable_s * 1000),
            capacity_days=self.alert_capacity_days,
        )

    def backing_uris(self) -> BackingStores[str]:
        return BackingStores(self.app_db_uri, self.snapshot_store_uri, self.oplog_store_uri)

    def store_uris(self) -> dict[str, str]:
        return self.backing_uris().by_label()

    def describe(self) -> str:
        """Where everything is, for the operator; database passwords are masked."""
        rows = [
            ("configuration", str(self.conf_path) if self.conf_path else "(none)"),
            ("listening on", _base_url(self.listen_address, self.port, "https" if self.https else "http")),
            ("URL to Access Ops Manager", self.central_url),
            *((label, _masked(uri)) for label, uri in self.store_uris().items()),
            (
                "blockstore",
                _masked(self.blockstore_uri) if self.blockstore_uri else str(self.blockstore_path),
            ),
            ("gen.key", str(self.gen_key_path)),
            ("Restoration Mode", "enabled" if self.restoration_mode_enabled else "DISABLED"),
            *(
                (("drill sandbox", "yes: no notification, no backup, no secondary"),)
                if self.drill_sandbox
                else ()
            ),
            ("HTTPS", self._describe_https()),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"  {label:<{width}}  {value}" for label, value in rows)

    def _describe_https(self) -> str:
        if self.https_pem_key_file is None:
            return "off (mms.https.PEMKeyFile is not set)"
        clients = f"client certificates {self.https_client_certificate_mode.value}"
        if self.https_ca_file is not None:
            clients += f", signed by {self.https_ca_file}"
        return f"{self.https_pem_key_file}; {clients}"


def _masked(uri: str) -> str:
    return sa.engine.make_url(uri).render_as_string(hide_password=True)


def _base_url(host: str, port: int, scheme: str = "http") -> str:
    if host in ("0.0.0.0", "::"):
        # Bound to every interface: the machine's name is what other hosts most likely reach it by.
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _drill_problems(parsed: JsonObject) -> list[tuple[str, str]]:
    """A scheduled drill needs all of its keys: naming the ones missing when only some are set."""
    missing = [k.name for k in DRILL_KEYS if parsed.get(k.attr) is None]
    if not 0 < len(missing) < len(DRILL_KEYS):
        return []
    return [
        (name, "is needed with the other mms.backup.drill.* keys of a scheduled drill") for name in missing
    ]


def _https_problems(parsed: JsonObject) -> list[tuple[str, str]]:
    """The mms.https.* keys that only make sense together, and a central URL agents could not use."""
    problems = []
    mode = parsed.get("https_client_certificate_mode")
    if parsed.get("https_pem_key_file") is None:
        given = [
            k.name for k in HTTPS_KEYS[1:] if parsed.get(k.attr) not in (None, ClientCertificateMode.NONE)
        ]
        problems += [(name, "needs mms.https.PEMKeyFile (HTTPS) to be set") for name in given]
        return problems
    if mode in (ClientCertificateMode.AGENTS_ONLY, ClientCertificateMode.REQUIRED) and not parsed.get(
        "https_ca_file"
    ):
        problems.append(
            (
                "mms.https.CAFile",
                f"is required with mms.https.ClientCertificateMode={mode}: name the CA "
                "that signs the client certificates",
            )
        )
    central = parsed.get("central_url")
    if central is not None and central.startswith("http://"):
        problems.append(
            (
                "mms.centralUrl",
                f"is {central!r} but this server serves HTTPS only (mms.https.PEMKeyFile): "
                "agents and links would fail; use https://",
            )
        )
    return problems


def parse_settings(
    values: dict[str, str], *, base_dir: Path, source: str = CONF_NAME, port: int | None = None
) -> Settings:
    """Validate properties into :class:`Settings`; ``port`` overrides ``mms.port``.

    Raises :class:`SettingsError` naming every unknown key, missing required key and malformed value.
    """
    given = {"mms.port": str(port)} if port is not None else None
    parsed, problems = conf.check_keys(values, KEYS, base_dir, given=given)
    stores = [(b.conf_key, parsed.get(KEYS_BY_NAME[b.conf_key].attr)) for b in BACKING]
    problems += conf.different_databases(stores)
    step_down, catch_up = (
        parsed.get("maintenance_step_down_secs"),
        parsed.get("maintenance_secondary_catch_up_period_secs"),
    )
    if step_down is not None and catch_up is not None and catch_up >= step_down:
        # replSetStepDown refuses a catch-up period that is not shorter than the step-down period.
        problems.append(
            (
                "mms.maintenance.secondaryCatchUpPeriodSeconds",
                f"must be less than mms.maintenance.stepDownSeconds ({step_down}), not {catch_up}",
            )
        )
    problems += _https_problems(parsed) + _drill_problems(parsed)
    if problems:
        raise SettingsError(source, problems)
    if parsed["central_url"] is None:
        scheme = "https" if parsed["https_pem_key_file"] is not None else "http"
        parsed["central_url"] = _base_url(parsed["listen_address"], parsed["port"], scheme)
    return Settings(**parsed)


def load_conf(conf_path: str | Path, *, port: int | None = None) -> Settings:
    """Read and validate a ``conf-mms.properties`` file."""
    path = Path(conf_path).expanduser().resolve()
    values = conf.read_conf(path)
    return dataclasses.replace(
        parse_settings(values, base_dir=path.parent, source=str(path), port=port), conf_path=path
    )


def _embedded_conf(port: int) -> str:
    chosen = {
        "mms.listenAddress": "127.0.0.1",
        "mms.port": str(port),
        **{key: f"sqlite:///{file}" for key, file in EMBEDDED_STORES.items()},
        "mms.blockstore.path": EMBEDDED_BLOCKSTORE,
        "mms.genKeyPath": "gen.key",
    }
    blocks = [
        "# opsmgr server configuration, written by `opsmgr server --data-dir` for an embedded setup.\n"
        "# Relative paths are relative to this file's directory. Commented-out keys show their defaults.\n"
    ]
    for key in KEYS:
        if key.name in chosen:
            blocks.append(
                dump_properties({key.name: chosen[key.name]}, header=textwrap.fill(key.description, 100))
            )
        else:
            line = dump_properties({key.name: key.default or ""})
            blocks.append(dump_properties({}, header=textwrap.fill(key.description, 100)) + f"# {line}")
    return "\n".join(blocks)


def embedded_defaults(data_dir: str | Path, port: int | None = None) -> tuple[Settings, str]:
    """The embedded setup in ``data_dir``: created on first use, reused after.

    First use creates ``data_dir``, a blockstore folder, a gen.key with mode 0600 (an existing one is kept)
    and a documented ``conf-mms.properties`` naming three SQLite files (which the stores create when they are
    opened). Later uses read that file; ``port`` overrides its ``mms.port`` without rewriting it. Returns the
    settings and a summary of where everything is.
    """
    root = Path(data_dir).expanduser().resolve()
    conf = root / CONF_NAME
    if conf.exists():
        settings = load_conf(conf, port=port)
        return settings, f"Using the embedded setup in {root}:\n{settings.describe()}"
    root.mkdir(parents=True, exist_ok=True)
    (root / EMBEDDED_BLOCKSTORE).mkdir(exist_ok=True)
    _, key_created = GenKey.load_or_create(root / "gen.key")
    tmp = conf.with_name(conf.name + ".tmp")
    tmp.write_text(_embedded_conf(port or DEFAULT_PORT), encoding="utf-8")
    # Written whole or not at all: a half-written file would be taken as an existing setup next time.
    os.replace(tmp, conf)
    settings = load_conf(conf, port=port)
    key_note = "a new gen.key (mode 0600)" if key_created else "the gen.key already there"
    return settings, (
        f"Created an embedded setup in {root} with three SQLite backing databases, a blockstore folder and "
        f"{key_note}; edit {conf} to change it. Keep a copy of gen.key with your backups.\n"
        + settings.describe()
    )


def load_settings(
    conf_path: str | Path | None = None, data_dir: str | Path | None = None, port: int | None = None
) -> tuple[Settings, str]:
    """What ``opsmgr server --conf FILE`` or ``--data-dir DIR [--port N]`` runs with, and a summary."""
    if conf_path is not None and data_dir is not None:
        raise InvalidInput("give either --conf or --data-dir, not both", field="conf", rule="exclusive")
    if conf_path is not None:
        settings = load_conf(conf_path, port=port)
        return settings, f"Using {settings.conf_path}:\n{settings.describe()}"
    if data_dir is not None:
        return embedded_defaults(data_dir, port)
    raise InvalidInput(
        "give --conf FILE (a conf-mms.properties) or --data-dir DIR (an embedded setup)",
        field="conf",
        rule="required",
    )
