"""The smallest valid ``conf-mms.properties`` the settings tests start from, and the folder it lives in."""

from pathlib import Path

MINIMAL = {
    "mongo.mongoUri": "sqlite:///app.sqlite",
    "mms.snapshotMetadataStore.uri": "sqlite:///snap.sqlite",
    "mms.oplogMetadataStore.uri": "sqlite:///oplog.sqlite",
    "mms.blockstore.path": "blocks",
}
BASE = Path("/srv/opsmgr")
