"""opsmgr: an open-source control plane for self-managed MongoDB.

Packages, one per area: ``store`` (backing databases and their oplog, gen.key, installation record),
``automation`` (automation configs: validation, diffing, status), ``maintenance`` (rolling restarts),
``backup`` (slices, snapshots, blocks, PITR), ``restoration`` (Restoration Mode), ``server`` (HTTP: public
API, agent API, UI), ``agent`` (the reconcile loop), ``drivers`` (the narrow interface to ``mongod``),
``sim`` (simulated MongoDB hosts) and ``cli`` (the ``opsmgr`` command).

Each module's docstring says what it may import (``tests/test_import_contracts.py`` holds the code to it); a
package's ``__init__`` speaks for the whole package. May import the standard library only.
"""

__version__ = "0.1.0"
