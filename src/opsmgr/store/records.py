"""The base of the typed records read from and written to the backing stores' documents.

A stored document is outside input to the server that reads it (an older server or a hand-edited database
may have written it), so a record is a frozen pydantic model with camelCase keys: a malformed document is a
:class:`~opsmgr.errors.StoreError` naming the record and the field, not a ``KeyError`` deep inside the
domain. A record keeps which keys its document had (pydantic's fields set), so ``to_doc(from_doc(d)) == d``
for the documents written before the records existed, and a copy made with :meth:`Stored.changed` writes
exactly the keys the dict-based code wrote. May import ``opsmgr.errors``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from opsmgr.errors import StoreError

_S = TypeVar("_S", bound="Stored")


class Stored(BaseModel):
    """A stored document or a part of one: camelCase keys, frozen, no key it does not know."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_doc(self) -> dict[str, Any]:
        """The document as stored: the keys it was read or built with, JSON types only."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def changed(self: _S, **changes: Any) -> _S:
        """A copy with ``changes`` (field names) set; they are written even when None."""
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {sorted(unknown)}")
        return self.model_copy(update=changes)

    @classmethod
    def parse_stored(cls: type[_S], doc: Mapping[str, Any], what: str) -> _S:
        """``doc`` as read from a store; a StoreError (503) naming ``what`` and the fields that are wrong."""
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise StoreError(f"{what} is malformed ({where})", error_code="STORED_RECORD_MALFORMED") from None
