"""``/groups/{id}/alertConfigs`` and ``/globalAlertConfigs``: Ops Manager's alert configurations, which
alerts a project raises and where their notifications go (``store.alert_configs``,
``store.global_alert_configs``).

A project's: ``GET`` lists them (``results``, ``totalCount``, ``links``), ``GET /{alertConfigId}`` reads one
and ``GET /{alertConfigId}/alerts`` the open alerts it covers, for any role on the project; ``POST`` creates
one (201), ``PUT /{alertConfigId}`` replaces one, ``PATCH /{alertConfigId}`` turns it on or off
(``enabled``, Ops Manager's only field there) and ``DELETE /{alertConfigId}`` deletes one (204), for Project
Owner. The global ones: the same routes under ``/globalAlertConfigs``; reading needs ORG_OWNER or
ORG_READ_ONLY on each organization a configuration belongs to, writing ORG_OWNER on each (a new one belongs
to the organizations its creator owns); ``GET /{id}/alerts`` lists the open alerts it covers in those
organizations' projects.

May import ``opsmgr.jsontypes``, ``opsmgr.alerts``, ``opsmgr.errors``, ``opsmgr.store``,
``opsmgr.server.auth``, ``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and
``opsmgr.server.public_api``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from opsmgr.alerts import ALERTS, AlertStatus, public_view
from opsmgr.errors import Forbidden
from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectOwner, ProjectReader, public_principal
from opsmgr.server.bodies import Array, Echo, Flag, Object, SentBody, Text
from opsmgr.server.deps import ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.store.alert_configs import EVENT_TYPES, AlertConfigs
from opsmgr.store.appdb import Principal, Role
from opsmgr.store.global_alert_configs import GlobalAlertConfigs

router = APIRouter(prefix=PREFIX, tags=["alertConfigs"])

PATH = "/groups/{group_id}/alertConfigs"
ONE = PATH + "/{config_id}"
GLOBAL = "/globalAlertConfigs"
GLOBAL_ONE = GLOBAL + "/{config_id}"


async def _configs(services: ServicesDep) -> AlertConfigs:
    return services.alert_configs


async def _globals(services: ServicesDep) -> GlobalAlertConfigs:
    return services.global_alert_configs


Configs = Annotated[AlertConfigs, Depends(_configs)]
Globals = Annotated[GlobalAlertConfigs, Depends(_globals)]
Caller = Annotated[Principal, Depends(public_principal)]


def org_ids(principal: Principal, roles: tuple[Role, ...]) -> frozenset[str]:
    """The organizations on which the caller holds one of ``roles``; none is a 403."""
    names = {r.value for r in roles}
    found = frozenset(
        str(r["orgId"]) for r in principal.roles if r.get("orgId") and r.get("roleName") in names
    )
    if not found:
        wanted = " or ".join(sorted(names))
        raise Forbidden(
            f"{principal.kind} {principal.public_key} lacks {wanted} for global alert configurations"
        )
    return found


def readable(principal: Principal) -> frozenset[str]:
    return org_ids(principal, (Role.ORG_OWNER, Role.ORG_READ_ONLY))


def owned(principal: Principal) -> frozenset[str]:
    return org_ids(principal, (Role.ORG_OWNER,))


class AlertConfigBody(SentBody):
    """POST or PUT of a project's alert configuration (every field it has)."""

    eventTypeName: Text = Field(None, description="One of " + ", ".join(EVENT_TYPES) + ".")
    enabled: Flag = Field(None, description="Whether it is evaluated (default true; global: false).")
    matchers: Array = Field(None, description="Matchers {fieldName, operator, value}.")
    metricThreshold: Object = Field(None, description="An OUTSIDE_METRIC_THRESHOLD configuration's metric.")
    threshold: Object = Field(None, description="{operator, threshold, units}.")
    notifications: Array = Field(None, description="At least one {typeName, intervalMin, delayMin, ...}.")
    id: Echo = None
    groupId: Echo = None
    typeName: Echo = None
    created: Echo = None
    updated: Echo = None
    links: Echo = None


class GlobalAlertConfigBody(AlertConfigBody):
    """POST or PUT of a global alert configuration."""

    forAllGroups: Flag = Field(None, description="For every project of its organizations (required).")
    groupIds: Array = Field(None, description="Otherwise the projects it applies to.")
    tags: Array = Field(None, description="Kept.")


class EnabledBody(SentBody):
    """PATCH: turn the configuration on or off."""

    enabled: Flag = Field(None, description="Whether it is evaluated.")


def _open_alerts(services: ServicesDep, group_id: str | None = None) -> list[JsonObject]:
    eq = {"status": AlertStatus.OPEN.value} | ({"groupId": group_id} if group_id else {})
    return [public_view(a) for a in services.stores.app.find(ALERTS, **eq)]


@router.get(PATH)
def list_configs(
    request: Request, caller: ProjectReader, configs: Configs, page: int = Page, per: int = PerPage
) -> JsonObject:
    return paginated(request, configs.of_group(caller.group_id), page, per)


@router.post(PATH, status_code=201)
def create_config(caller: ProjectOwner, configs: Configs, body: AlertConfigBody) -> JsonObject:
    return configs.create(caller.group_id, body.as_sent())


@router.get(ONE)
def get_config(caller: ProjectReader, configs: Configs, config_id: str) -> JsonObject:
    return configs.get(caller.group_id, config_id)


@router.get(ONE + "/alerts")
def config_alerts(
    request: Request,
    caller: ProjectReader,
    configs: Configs,
    services: ServicesDep,
    config_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    found = configs.open_alerts(caller.group_id, config_id, _open_alerts(services, caller.group_id))
    return paginated(request, found, page, per)


@router.put(ONE)
def replace_config(
    caller: ProjectOwner, configs: Configs, config_id: str, body: AlertConfigBody
) -> JsonObject:
    return configs.replace(caller.group_id, config_id, body.as_sent())


@router.patch(ONE)
def enable_config(caller: ProjectOwner, configs: Configs, config_id: str, body: EnabledBody) -> JsonObject:
    return configs.set_enabled(caller.group_id, config_id, body.as_sent().get("enabled"))


@router.delete(ONE, status_code=204)
def delete_config(caller: ProjectOwner, configs: Configs, config_id: str) -> None:
    configs.delete(caller.group_id, config_id)


@router.get(GLOBAL)
def list_global_configs(
    request: Request, caller: Caller, configs: Globals, page: int = Page, per: int = PerPage
) -> JsonObject:
    return paginated(request, configs.listed(readable(caller)), page, per)


@router.post(GLOBAL, status_code=201)
def create_global_config(caller: Caller, configs: Globals, body: GlobalAlertConfigBody) -> JsonObject:
    return configs.create(body.as_sent(), owned(caller))


@router.get(GLOBAL_ONE)
def get_global_config(caller: Caller, configs: Globals, config_id: str) -> JsonObject:
    return configs.get(config_id, readable(caller))


@router.get(GLOBAL_ONE + "/alerts")
def global_config_alerts(
    request: Request,
    caller: Caller,
    configs: Globals,
    services: ServicesDep,
    config_id: str,
    page: int = Page,
    per: int = PerPage,
) -> JsonObject:
    found = configs.open_alerts(config_id, readable(caller), _open_alerts(services))
    return paginated(request, found, page, per)


@router.put(GLOBAL_ONE)
def replace_global_config(
    caller: Caller, configs: Globals, config_id: str, body: GlobalAlertConfigBody
) -> JsonObject:
    return configs.replace(config_id, body.as_sent(), owned(caller))


@router.patch(GLOBAL_ONE)
def enable_global_config(caller: Caller, configs: Globals, config_id: str, body: EnabledBody) -> JsonObject:
    return configs.set_enabled(config_id, body.as_sent().get("enabled"), owned(caller))


@router.delete(GLOBAL_ONE, status_code=204)
def delete_global_config(caller: Caller, configs: Globals, config_id: str) -> None:
    configs.delete(config_id, owned(caller))
