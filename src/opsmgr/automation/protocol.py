"""The agent protocol's names, shared by the server that answers and the agent that asks: the agent API
paths and the types of the requests a server may put in its answer to a status report.

May import the standard library only.
"""

from __future__ import annotations

from typing import Final

CONF_PATH: Final = "/agents/api/automation/conf/v1/{group}"
STATUS_PATH: Final = "/agents/api/automation/status/v1/{group}"
UPLOAD_PATH: Final = "/agents/api/automation/restoration/v1/{group}/config"

# Restoration Mode chose this agent's config as the latest: upload it, secrets redacted.
UPLOAD_CONFIG_REQUEST: Final = "UPLOAD_CONFIG"

# Backup: what a host backs up and restores, and where its uploads go (``{group}`` as above).
BACKUP_PATH: Final = "/agents/api/backup/v1/{group}"

# Supervised unique index builds: the active builds of a project, and ``/{buildId}/events`` under it.
INDEX_BUILDS_PATH: Final = "/agents/api/automation/indexBuilds/v1/{group}"

# The change a write of a project's agent work announces (``Txn.notify``, keyed by project id): backup
# configs, restore jobs, rolling changes ending, unique index builds starting or ending. The server's cache of
# each project's work (``server.work``) drops it; so does any change of its automation config.
WORK_CHANGED: Final = "agent_work"
