"""The public API's agents in Ops Manager's shape: ``GET /groups/{id}/agents`` (the links to each type's
list, no results, as Ops Manager answers it) and ``GET /groups/{id}/agents/{TYPE}`` with TYPE one of
AUTOMATION, MONITORING and BACKUP (any other: 400 naming them). Reads need GROUP_READ_ONLY.

opsmgr's agent is one process per host doing what Ops Manager's unified agent does: automation, the
monitoring of its processes (what ``/hosts`` shows comes from its reports) and backup (shipping and
restores). So every agent whose report the project keeps is listed under each of the three types, as Ops
Manager lists its unified agent under each module it runs. ``stateName`` is ACTIVE for an agent whose host
has processes in the goal config and NO_PROCESSES for one whose host has none; ``lastConf`` and
``lastPing`` are its last report, as ISO-8601 strings. opsmgr does not count an agent's calls
(``confCount``, ``pingCount`` are 0, Ops Manager's value for an agent it has no count of). The monitoring and
backup modules are managed by the automation agent (``isManaged``); the automation agent itself is not.

May import ``opsmgr.errors``, ``opsmgr.jsontypes``, ``opsmgr.timestamps``, ``opsmgr.automation.config``,
``opsmgr.server.auth``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Request

from opsmgr.automation.config import hostnames
from opsmgr.errors import InvalidInput
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectReader
from opsmgr.server.deps import Automation
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.timestamps import iso_utc

router = APIRouter(prefix=PREFIX, tags=["public"])

# Each type and the relation Ops Manager names the link to its list with.
TYPES = {"MONITORING": "monitoringAgents", "BACKUP": "backupAgents", "AUTOMATION": "automationAgents"}
REL = "http://mms.mongodb.com/"


def agent_json(status: JsonObject, goal_hosts: set[str], type_name: str) -> JsonObject:
    """One agent's document of type ``type_name``, from its last kept report."""
    last = iso_utc(int(status["receivedAt"]))
    hostname = str(status["hostname"])
    return {
        "typeName": type_name,
        "hostname": hostname,
        "confCount": 0,
        "lastConf": last,
        "stateName": "ACTIVE" if hostname.lower() in goal_hosts else "NO_PROCESSES",
        "pingCount": 0,
        "isManaged": type_name != "AUTOMATION",
        "lastPing": last,
        "tag": None,
    }


@router.get("/groups/{group_id}/agents")
def agent_links(request: Request, caller: ProjectReader) -> JsonObject:
    group = f"{str(request.base_url).rstrip('/')}{PREFIX}/groups/{caller.group_id}"
    links = [{"href": f"{group}/agents", "rel": "self"}, {"href": group, "rel": f"{REL}group"}]
    links += [{"href": f"{group}/agents/{t}", "rel": REL + rel} for t, rel in TYPES.items()]
    return {"results": [], "links": links, "totalCount": 0}


@router.get("/groups/{group_id}/agents/{agent_type}")
def list_agents(
    request: Request,
    caller: ProjectReader,
    automation: Automation,
    agent_type: str = Path(max_length=64),
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    if agent_type not in TYPES:
        raise InvalidInput(
            f"An invalid enumeration value {agent_type} was specified: the agent type is one of "
            f"{', '.join(sorted(TYPES))}.",
            error_code="INVALID_AGENT_TYPE_NAME",
            field="type",
            allowed=sorted(TYPES),
        )
    goal_hosts = hostnames(automation.config(caller.group_id))
    statuses = sorted(automation.agent_statuses(caller.group_id), key=lambda s: str(s["hostname"]))
    agents = [agent_json(s, goal_hosts, agent_type) for s in statuses]
    return paginated(request, agents, page, per)
