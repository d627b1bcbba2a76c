"""Per-epoch checkpoints that a killed run resumes from exactly.

Layout: ``checkpoint/epoch-NNNN/{weights.safetensors, best.safetensors, state.pt}`` plus a pointer
file ``checkpoint/latest``. An epoch folder is written under a temporary name and renamed, then the
pointer is replaced; so a reader only ever sees complete checkpoints. ``state.pt`` holds plain
tensors, numbers and dicts (optimizer, schedule, RNG and data-order state, early stopping, history)
and is read back with ``weights_only=True``.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dcloop.atomic import replacing, replacing_dir, write_text
from dcloop.errors import TrainError

POINTER = "latest"


def cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict, as safetensors needs it."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Write safetensors atomically (temporary name in the same folder, then rename)."""
    with replacing(path) as tmp:
        save_file(cpu_state(state), str(tmp))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def rng_state() -> dict[str, Any]:
    """Global RNG states of torch, numpy and Python as tensors and numbers."""
    np_state: Any = np.random.get_state()
    py_version, py_keys, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": [py_version, torch.tensor(py_keys, dtype=torch.int64), py_gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], *state["numpy_gauss"]))
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(int(k) for k in keys.tolist()), gauss))


def save_checkpoint(
    folder: Path,
    epoch: int,
    weights: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor] | None,
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write epoch ``epoch`` completely, point ``latest`` at it, then drop older epochs."""
    final = folder / f"epoch-{epoch:04d}"
    with replacing_dir(final) as staging:
        save_file(cpu_state(weights), str(staging / "weights.safetensors"))
        if best is not None:
            save_file(cpu_state(best), str(staging / "best.safetensors"))
        torch.save({"epoch": epoch, **state}, staging / "state.pt")
        if final.exists():
            shutil.rmtree(final)
    write_text(folder / POINTER, final.name)
    for old in sorted(folder.glob("epoch-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    """The folder ``latest`` points at, or None when nothing complete was written."""
    pointer = folder / POINTER
    if not pointer.is_file():
        return None
    target = folder / pointer.read_text(encoding="utf-8").strip()
    return target if (target / "state.pt").is_file() else None


def load_checkpoint(
    target: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
    """(weights, best weights or None, state) of one checkpoint folder."""
    try:
        state = torch.load(target / "state.pt", map_location="cpu", weights_only=True)
        weights = load_weights(target / "weights.safetensors")
        best_path = target / "best.safetensors"
        best = load_weights(best_path) if best_path.is_file() else None
    except (OSError, RuntimeError) as exc:
        raise TrainError(f"Checkpoint {target} cannot be read: {exc}.") from None
    return weights, best, state
