"""The workspace store: one SQL database of dcloop's own records.

Queries live in one public module per domain, functions that take a :class:`Store` and run one
transaction each: ``datasets``, ``runs``, ``variants``, ``registry``, ``predictions``, ``turns``.
Nothing outside this package touches SQL; opening a store migrates it (``_migrations``).
"""

from dcloop.store._records import DatasetRecord, EpochRecord, RunRecord
from dcloop.store._store import Store, close_store, open_store

__all__ = ["DatasetRecord", "EpochRecord", "RunRecord", "Store", "close_store", "open_store"]
