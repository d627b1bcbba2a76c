"""The workspace store: one SQL database of dcloop's own records."""

from dcloop.store._records import DatasetRecord, EpochRecord, RunRecord
from dcloop.store._store import Store, close_store, open_store

__all__ = ["DatasetRecord", "EpochRecord", "RunRecord", "Store", "close_store", "open_store"]
