"""The process spec the mongod driver's tests start from, and a server error reply."""

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


def error(code: int, code_name: str, errmsg: str) -> dict[str, Any]:
    return {"ok": 0.0, "code": code, "codeName": code_name, "errmsg": errmsg}
