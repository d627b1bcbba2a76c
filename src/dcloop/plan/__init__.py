"""Data-center planner: how long, how many accelerators, how much memory, energy, money and CO2.

Pure Python over frozen dataclasses (no torch): a hardware catalog with sourced numbers, training and
serving estimates, inverse questions, and a check against published training runs.
"""

from __future__ import annotations

from dcloop.plan._catalog import Accelerator, get_accelerator, load_catalog
from dcloop.plan._image import ImageServingPlan, ImageServingSpec, plan_image_serving
from dcloop.plan._inverse import ComputeOptimal, accelerators_for_days, largest_compute_optimal_model
from dcloop.plan._memory import MemoryBreakdown, training_memory
from dcloop.plan._models import PRESETS, ModelShape, get_preset, params_only, transformer
from dcloop.plan._serving import ServingPlan, ServingSpec, plan_serving
from dcloop.plan._training import TrainingPlan, TrainingSpec, plan_training
from dcloop.plan._validation import ValidationResult, validate_published
from dcloop.plan._whatif import WhatIfRow, what_if

__all__ = [
    "PRESETS",
    "Accelerator",
    "ComputeOptimal",
    "ImageServingPlan",
    "ImageServingSpec",
    "MemoryBreakdown",
    "ModelShape",
    "ServingPlan",
    "ServingSpec",
    "TrainingPlan",
    "TrainingSpec",
    "ValidationResult",
    "WhatIfRow",
    "accelerators_for_days",
    "get_accelerator",
    "get_preset",
    "largest_compute_optimal_model",
    "load_catalog",
    "params_only",
    "plan_image_serving",
    "plan_serving",
    "plan_training",
    "training_memory",
    "transformer",
    "validate_published",
    "what_if",
]
