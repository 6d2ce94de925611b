"""store.backing: the three backing databases named once, and every reader of a conf or agent config uses
those names."""

from __future__ import annotations

import json
import subprocess
import sys

from opsmgr.agent.backing import backing_config
from opsmgr.server.settings import EMBEDDED_STORES, KEYS_BY_NAME
from opsmgr.store.backing import BACKING, LABELS, BackingStores, Role, StoreName


def test_the_three_in_order_with_their_names_labels_and_keys() -> None:
    assert [b.name for b in BACKING] == [StoreName.APP, StoreName.SNAPSHOT, StoreName.OPLOG]
    assert [b.label for b in BACKING] == [
        "application database",
        "snapshot metadata store",
        "oplog metadata store",
    ]
    assert [b.role for b in BACKING] == list(Role)
    assert LABELS == {
        "app": "application database",
        "snapshot": "snapshot metadata store",
        "oplog": "oplog metadata store",
    }


def test_the_servers_conf_documents_each_store_key_and_embeds_each_file() -> None:
    for b in BACKING:
        assert KEYS_BY_NAME[b.conf_key].default is None  # required
        assert EMBEDDED_STORES[b.conf_key] == b.embedded_file


def test_a_backing_agent_reads_each_stores_override_key() -> None:
    config = backing_config({b.agent_key: f"postgresql://h/{b.name}" for b in BACKING})
    assert config is not None
    assert config.uris == {
        "app": "postgresql://h/app",
        "snapshot": "postgresql://h/snapshot",
        "oplog": "postgresql://h/oplog",
    }


def test_backing_stores_value() -> None:
    uris = BackingStores("a", "s", "o")
    assert uris.of(StoreName.SNAPSHOT) == "s" and uris.of("oplog") == "o"
    assert uris.by_name() == {"app": "a", "snapshot": "s", "oplog": "o"}
    assert uris.by_role() == {Role.APP: "a", Role.SNAPSHOT: "s", Role.OPLOG: "o"}
    assert list(uris.by_label()) == [b.label for b in BACKING]
    assert uris.map(lambda b, uri: f"{b.name}={uri}") == BackingStores("app=a", "snapshot=s", "oplog=o")


def test_importing_it_loads_no_store_engine() -> None:
    code = "import sys, json, opsmgr.store.backing; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert [m for m in json.loads(out.stdout) if m.startswith(("sqlalchemy", "opsmgr.store.engine"))] == []
