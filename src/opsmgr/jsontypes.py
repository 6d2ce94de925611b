"""The type of a JSON object as the wire and the stores carry it, before a typed record reads it.

Named once so that modules checked with ``disallow_any_explicit`` (the server's) say "a JSON object" rather
than spelling ``Any``. May import nothing of opsmgr.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]
