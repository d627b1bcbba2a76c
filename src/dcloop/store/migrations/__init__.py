"""Alembic migrations of the workspace store, run by ``dcloop.store._migrations`` (no alembic.ini).

Revision ``NNNN`` is schema version N. Versions 1-5 predate Alembic: they recreate, frozen here, the
tables dcloop 0.1 created, so a database from then is stamped at its version and upgraded from there.
A schema change is a new file in ``versions/`` whose ``down_revision`` is the previous head.
"""
