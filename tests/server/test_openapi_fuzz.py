"""Schemathesis over the served OpenAPI document: no generated request, valid or not, gets a 5xx or a
response that breaks the documented schema, and the fuzzing changes nothing it should not.
"""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.procs import ServerProcess

EXAMPLES_PER_OPERATION = 25


def test_fuzz_every_operation(server: ServerProcess) -> None:
    key = server.create_key("ORG_OWNER")
    with server.client(key) as api:
        group_id = api.post("/groups", json={"name": "fuzzed"}).json()["id"]
    spec = httpx.get(f"{server.url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    auth = requests.auth.HTTPDigestAuth(key["publicKey"], key["privateKey"])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    for operation in operations:
        # Half the time aim at the real project so that handlers run past the lookup.
        strategy = operation.as_strategy()

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=strategy, real=st.booleans())
        def run(case: Any, real: bool) -> None:
            if real and case.path_parameters and "group_id" in case.path_parameters:
                case.path_parameters["group_id"] = group_id
            response = case.call(base_url=server.url, auth=auth, timeout=10)
            try:
                case.validate_response(
                    response,
                    checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
                )
            except Exception as exc:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {exc}")
                raise

        # A failing example is recorded in ``failures``; go on to fuzz the other operations.
        with contextlib.suppress(Exception):
            run()
    assert not failures, "\n".join(failures[:20])
    assert '"level": "ERROR"' not in server.log(), "the server logged an unexpected error"
