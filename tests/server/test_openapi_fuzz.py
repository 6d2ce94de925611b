"""Schemathesis over the served OpenAPI document, for every operation, with valid and invalid data: no
generated request gets a 5xx, a status the operation does not declare, a content type it does not declare or
a body that breaks the declared schema; and the fuzzing changes nothing it should not.

Each operation is called with the credentials its ``security`` names: an ORG_OWNER programmatic API key over
Digest for the public API, the project's agent API key over Basic for the agent API (with the real project in
the path, as its Basic user name must be), none where it names none.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from opsmgr.server.contract import BASIC, DIGEST
from tests.procs import ServerProcess

EXAMPLES_PER_OPERATION = 25
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Deleting the project the other operations aim at would leave them nothing but 404s to find.
KEEP_THE_PROJECT = {("DELETE", "/api/public/v1.0/groups/{group_id}")}


class Fuzz:
    """One server, its real project and the credentials of each security scheme; failures are collected."""

    def __init__(self, server: ServerProcess, spec: dict[str, Any]) -> None:
        key = server.create_key("ORG_OWNER")
        with server.client(key) as api:
            self.group_id = api.post("/groups", json={"name": "fuzzed"}).json()["id"]
            agent_key = api.post(f"/groups/{self.group_id}/agentapikeys", json={"desc": "fuzz"}).json()["key"]
        self.url = server.url
        self.spec = spec
        self.credentials = {
            DIGEST: requests.auth.HTTPDigestAuth(key["publicKey"], key["privateKey"]),
            BASIC: requests.auth.HTTPBasicAuth(self.group_id, agent_key),
        }
        self.failures: list[str] = []
        self.answered: dict[str, set[int]] = {}  # per operation, the statuses it answered

    def auth(self, method: str, path: str) -> Any:
        security = self.spec["paths"][path][method.lower()].get("security", [])
        return next((self.credentials[name] for req in security for name in req), None)

    def operation(self, operation: Any, mode: GenerationMode) -> None:
        auth = self.auth(operation.method, operation.path)
        aim_at_project = (operation.method.upper(), operation.path) not in KEEP_THE_PROJECT

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode), real=st.booleans())
        def run(case: Any, real: bool) -> None:
            # Agent routes always, public ones half the time: the real project, so that handlers run past the
            # lookup (and an agent's Basic user name is its project).
            if (
                "group_id" in (case.path_parameters or {})
                and aim_at_project
                and (real or auth is self.credentials[BASIC])
            ):
                case.path_parameters["group_id"] = self.group_id
            response = case.call(base_url=self.url, auth=auth, timeout=20)
            self.answered.setdefault(operation.label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is the latter
                self.failures.append(
                    f"{mode.value} {case.method} {case.formatted_path}: {response.status_code} {exc}"
                )
                raise

        # A failing example is recorded in ``failures``; go on to fuzz the other operations.
        with contextlib.suppress(Exception, BaseExceptionGroup):
            run()


def test_fuzz_every_operation(server: ServerProcess) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    fuzz = Fuzz(server, spec)
    operations = [result.ok() for result in schemathesis.openapi.from_dict(spec).get_all_operations()]
    assert len(operations) >= 80
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz.operation(operation, mode)
    assert not fuzz.failures, "\n".join(fuzz.failures[:20])
    # The credentials worked: every operation answered something else than 401 to some request.
    refused = [label for label, statuses in fuzz.answered.items() if statuses <= {401}]
    assert len(fuzz.answered) == len(operations) and not refused, refused
    assert '"level": "ERROR"' not in server.log(), "the server logged an unexpected error"
