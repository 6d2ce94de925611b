"""The process spec the mongod driver's tests start from."""

from __future__ import annotations

from typing import Any

from opsmgr.drivers.base import ProcessSpec

NAME = "rs0_0"


def spec(**overrides: Any) -> ProcessSpec:
    fields: dict[str, Any] = {
        "name": NAME,
        "hostname": "db1.example.net",
        "port": 27017,
        "version": "7.0.14",
        "args": {},
        "repl_set_name": "rs0",
        "dbpath": "/data/rs0_0",
    }
    fields.update(overrides)
    return ProcessSpec(**fields)
