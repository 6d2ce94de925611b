"""``/groups/{id}/alertConfigs``: Ops Manager's alert configurations, which deployment alerts a project
evaluates and with what threshold (``store.alert_configs``). ``GET`` lists them (``results``,
``totalCount``, ``links``) and ``GET /{alertConfigId}`` reads one, for any role on the project; ``POST``
creates one (201), ``PUT /{alertConfigId}`` replaces one, ``PATCH /{alertConfigId}`` turns it on or off
(``enabled``, Ops Manager's only field there) and ``DELETE /{alertConfigId}`` deletes one (204), for Project
Owner.

May import ``opsmgr.jsontypes``, ``opsmgr.store.alert_configs``, ``opsmgr.server.auth``,
``opsmgr.server.bodies``, ``opsmgr.server.deps``, ``opsmgr.server.paging`` and ``opsmgr.server.public_api``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from opsmgr.jsontypes import JsonObject
from opsmgr.server.auth import ProjectOwner, ProjectReader
from opsmgr.server.bodies import Array, Echo, Flag, Object, SentBody, Text
from opsmgr.server.deps import ServicesDep
from opsmgr.server.paging import Page, PerPage, paginated
from opsmgr.server.public_api import PREFIX
from opsmgr.store.alert_configs import EVENT_TYPES, AlertConfigs

router = APIRouter(prefix=PREFIX, tags=["alertConfigs"])

PATH = "/groups/{group_id}/alertConfigs"
ONE = PATH + "/{config_id}"


def _configs(services: ServicesDep) -> AlertConfigs:
    return services.alert_configs


Configs = Annotated[AlertConfigs, Depends(_configs)]


class AlertConfigBody(SentBody):
    """POST or PUT of an alert configuration (every field it has)."""

    eventTypeName: Text = Field(None, description="One of " + ", ".join(EVENT_TYPES) + ".")
    enabled: Flag = Field(None, description="Whether it is evaluated (default true).")
    matchers: Array = Field(None, description="Matchers {fieldName, operator, value} (kept, not applied).")
    metricThreshold: Object = Field(None, description="An OUTSIDE_METRIC_THRESHOLD configuration's metric.")
    threshold: Object = Field(None, description="{operator, threshold, units}.")
    notifications: Array = Field(None, description="At least one {typeName, intervalMin, delayMin, ...}.")
    id: Echo = None
    groupId: Echo = None
    typeName: Echo = None
    created: Echo = None
    updated: Echo = None
    links: Echo = None


class EnabledBody(SentBody):
    """PATCH: turn the configuration on or off."""

    enabled: Flag = Field(None, description="Whether it is evaluated.")


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
