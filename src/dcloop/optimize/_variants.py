"""Reading recorded variants: the deployment stage registers one of these as a model version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcloop.store import runs as store_runs
from dcloop.store import variants as store_variants
from dcloop.store.variants import VariantRecord

if TYPE_CHECKING:
    from dcloop.workspace import Workspace


def list_variants(workspace: Workspace, run: str | None = None) -> list[VariantRecord]:
    """Every recorded variant, oldest first; ``run`` (id or unique prefix) keeps one run's."""
    run_id = store_runs.get_run(workspace.store, run).id if run is not None else None
    return store_variants.list_variants(workspace.store, run_id=run_id)


def get_variant(workspace: Workspace, ref: str) -> VariantRecord:
    """A variant by id or unique id prefix; NotFoundError names `dcloop variants list` otherwise."""
    return store_variants.get_variant(workspace.store, ref)
