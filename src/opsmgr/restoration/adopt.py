"""Adopting a project from its agents, when both installations (primary and secondary, with every backup of
the backing databases) are lost: a new installation recreates the project with the id and agent API key a
host's ``automation-agent.config`` holds (``mmsGroupId``, ``mmsApiKey``), so the agents re-attach once their
``mmsBaseUrl`` points at it, and takes the project's configuration from them by Restoration Mode's own
reconciliation. An opsmgr-only operation (Ops Manager has none): ``opsmgr adopt`` and
``POST /api/public/v1.0/orgs/{orgId}/adoptedGroups``.

The adopted project starts with an empty configuration at version 0 and ARMED (deployment changes refused),
so the first agent polling with the version it holds enters Restoration Mode; nothing is served to an agent
before reconciliation ends, so no process is stopped.

Which agents may speak. The new installation knows nothing of the deployment, and the agent key is a secret
every host of the project shares, so it proves membership of no particular host. The operator therefore
names the deployment's hosts (``--hosts``, read from the deployment, e.g. its replica set members): only the
agents of those hosts may trigger the mode, be heard or upload (any other, with the right key, is refused
403 ``AGENT_HOST_NOT_IN_PROJECT`` and counted in an alert), and reconciliation waits for every named host's
claim (version, timestamp, config hash) before it chooses the highest version. The chosen agent's upload must
be the config it claimed and must hold every process it runs (``restoration.mode``). A host of the uploaded
config that was not named speaks for the project afterwards, as a host of its config: if it holds a newer
version it enters Restoration Mode again by the ordinary rule. Secrets the agent redacts from its upload
cannot be filled from an empty configuration: a deployment with authentication needs them re-entered (the
upload is refused naming the field, and reconciliation retries). Adoption is refused while Restoration Mode
is disabled: the agents would be served the empty configuration.

May import ``opsmgr.errors``, ``opsmgr.store``, ``opsmgr.automation.service`` and ``opsmgr.restoration``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opsmgr.automation.service import CONFIG_CHANGED, CONFIGS
from opsmgr.errors import Conflict, InvalidInput
from opsmgr.restoration import adoption, mode
from opsmgr.restoration.service import RESTORATION, RESTORATION_CHANGED
from opsmgr.restoration.state import ArmedBy, ModeRecord
from opsmgr.store.appdb import (
    AGENT_API_KEYS,
    AGENT_KEYS_CHANGED,
    GROUPS,
    check_id,
    check_name,
    hash_agent_key,
)
from opsmgr.store.engine import Store

# Agent API keys are hexadecimal (Ops Manager's and this server's); bounded so a digest is never of junk.
_AGENT_KEY = re.compile(r"[0-9a-fA-F]{32,128}")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,251}[A-Za-z0-9])?")
MAX_HOSTS = 1000
# What the restore-shaped ``armedBy`` of the project's Restoration Mode record says armed it.
ADOPTION_MARK = "adoption"


@dataclass(frozen=True)
class AdoptRequest:
    group_id: str
    agent_key: str
    name: str
    hosts: tuple[str, ...]


def parse_request(group_id: str, agent_key: str, name: str | None, hosts: Sequence[str]) -> AdoptRequest:
    """The request checked (400 naming the field): an Ops Manager id, a hexadecimal key, a project name, and
    1 to 1000 host names (duplicates, compared case-insensitively, dropped)."""
    check_id(group_id, "groupId")
    if not _AGENT_KEY.fullmatch(agent_key):
        raise InvalidInput(
            "agentApiKey must be the mmsApiKey of automation-agent.config: 32 to 128 hexadecimal characters",
            field="agentApiKey",
        )
    chosen = check_name(name if name is not None else f"Adopted {group_id}")
    if not 1 <= len(hosts) <= MAX_HOSTS:
        raise InvalidInput(
            f"hosts must name the deployment's hosts (1 to {MAX_HOSTS}): only their agents may speak for "
            "the adopted project",
            field="hosts",
        )
    kept: dict[str, str] = {}
    for i, host in enumerate(hosts):
        if not _HOSTNAME.fullmatch(host):
            raise InvalidInput(f"hosts[{i}] is not a host name: {host[:60]!r}", field=f"hosts[{i}]")
        kept.setdefault(host.lower(), host)
    return AdoptRequest(group_id, agent_key, chosen, tuple(sorted(kept.values())))


def adopt(store: Store, request: AdoptRequest, org_id: str, *, restoration_enabled: bool) -> dict[str, Any]:
    """Create the adopted project in one transaction: the project with its id, the agent key (its digest),
    the adoption record naming the hosts, and its Restoration Mode record ARMED. Returns the project."""
    if not restoration_enabled:
        raise Conflict(
            "Restoration Mode is disabled (mms.restorationMode.enabled=false): an adopted project's agents "
            "would be served its empty configuration and stop every process. Enable it to adopt.",
            error_code="RESTORATION_MODE_DISABLED",
        )
    now = int(time.time() * 1000)
    gid = request.group_id
    key_doc = {
        "groupId": gid,
        "desc": "Adopted from the agents' automation-agent.config",
        "keyHash": hash_agent_key(request.agent_key),
        "maskedKey": f"********{request.agent_key[-8:]}",
        "createdTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1000)),
        "createdBy": "ADOPTION",
    }
    armed = mode.arm(
        ModeRecord.new(gid),
        hosts=list(request.hosts),
        restore=ArmedBy(restore_job_id=ADOPTION_MARK, restored_at=now),
        now=now,
    )
    with store.tx() as t:
        if t.get(GROUPS, gid) is not None:
            raise Conflict(f"A project with ID {gid} already exists.", error_code="GROUP_ALREADY_EXISTS")
        if t.get(CONFIGS, gid) is not None:
            # A deleted project's config stays: adopting over it would mix two deployments' histories.
            raise Conflict(
                f"This installation already holds an automation config of project {gid}.",
                error_code="GROUP_ALREADY_EXISTS",
            )
        if t.find(GROUPS, name=request.name, orgId=org_id):
            raise Conflict(
                f"A project named {request.name!r} already exists in organization {org_id}",
                error_code="GROUP_ALREADY_EXISTS",
            )
        group = t.insert(
            GROUPS, {"_id": gid, "name": request.name, "orgId": org_id, "created": key_doc["createdTime"]}
        )
        t.insert(AGENT_API_KEYS, key_doc)
        adoption.write(t, gid, list(request.hosts), now)
        t.put(RESTORATION, armed.to_doc())
        for topic in (AGENT_KEYS_CHANGED, RESTORATION_CHANGED, CONFIG_CHANGED):
            t.notify(topic, gid)
    return group
