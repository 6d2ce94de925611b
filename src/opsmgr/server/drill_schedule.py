"""A secondary's scheduled restore drills: with ``mms.backup.drill.*`` set (the primary's gen.key copy, its
URL and a key that reads its projects), the secondary runs ``opsmgr drill run`` itself for each
backing-database deployment ``backup.drills.Drills.due`` names, one at a time, as a child process whose
report reaches the secondary's API like an operator's.

The drill speaks to this server with a programmatic key the scheduler makes for it (GROUP_BACKUP_ADMIN on
the deployment's project, its private part kept encrypted with gen.key in ``backing_drill_keys``); every
secret reaches the child in its environment, never its arguments (``ps`` shows those). The child's output
goes to ``drills/`` beside the configuration. Stopping the server stops a drill under way.

May import ``opsmgr.command``, ``opsmgr.store`` and ``opsmgr.server.services`` (types only).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsmgr.command import opsmgr_command
from opsmgr.store.appdb import Role

if TYPE_CHECKING:
    from opsmgr.server.services import Services

log = logging.getLogger("opsmgr.server.drills")

KEYS = "backing_drill_keys"


@dataclass(frozen=True)
class DrillSource:
    """Where a scheduled drill finds the primary, and where its output goes."""

    gen_key: Path
    primary_url: str
    primary_public_key: str
    primary_private_key: str
    log_dir: Path


class DrillScheduler:
    def __init__(
        self,
        services: Services,
        source: DrillSource,
        encrypt: Callable[[str], str],
        decrypt: Callable[[str], str],
    ) -> None:
        self.services = services
        self.source = source
        self._encrypt = encrypt
        self._decrypt = decrypt
        self.child: subprocess.Popen[bytes] | None = None
        self.running: tuple[str, str] | None = None

    def tick(self) -> str:
        """Reaps a finished drill, or starts the next one due; says what it did."""
        if self.child is not None:
            code = self.child.poll()
            if code is None:
                return f"a drill of cluster {self.running[1] if self.running else '?'} is under way"
            log.info("the scheduled drill of cluster %s ended with status %s", self.running, code)
            self.child, self.running = None, None
        due = self.services.drills.due(self.services.config.drill_interval_days)
        if not due:
            return "no drill due"
        group_id, cluster_id = due[0]
        self._start(group_id, cluster_id)
        return f"started a drill of cluster {cluster_id}"

    def _start(self, group_id: str, cluster_id: str) -> None:
        public, private = self._key(group_id)
        src = self.source
        src.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {
            **os.environ,
            "OPSMGR_PUBLIC_KEY": public,
            "OPSMGR_PRIVATE_KEY": private,
            "OPSMGR_PRIMARY_PUBLIC_KEY": src.primary_public_key,
            "OPSMGR_PRIMARY_PRIVATE_KEY": src.primary_private_key,
        }
        args = [
            *opsmgr_command(),
            *("drill", "run", "--url", self.services.config.central_url),
            *("--group", group_id, "--cluster", cluster_id, "--gen-key", str(src.gen_key)),
            *("--primary-url", src.primary_url, "--json"),
        ]
        with open(src.log_dir / f"drill-{cluster_id}-{int(time.time())}.log", "ab") as out:
            self.child = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.running = (group_id, cluster_id)
        log.info("started the scheduled restore drill of cluster %s (pid %d)", cluster_id, self.child.pid)

    def _key(self, group_id: str) -> tuple[str, str]:
        """The drill's key on this server for the project: made once, its private part kept encrypted."""
        store = self.services.stores.app
        kept = store.get(KEYS, group_id)
        if kept is not None and self.services.appdb.api_key_by_public(str(kept["publicKey"])) is not None:
            return str(kept["publicKey"]), self._decrypt(str(kept["privateKeyEnc"]))
        role = {"groupId": group_id, "roleName": Role.GROUP_BACKUP_ADMIN.value}
        doc, private = self.services.appdb.create_api_key("scheduled restore drills", [role])
        store.put(
            KEYS, {"_id": group_id, "publicKey": doc["publicKey"], "privateKeyEnc": self._encrypt(private)}
        )
        return str(doc["publicKey"]), private

    def stop(self) -> None:
        """A drill under way ends with the server (its sandbox server and agents with it)."""
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(30)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(10)
