"""Data intake, cleaning, versioned data sets and splits."""

from dcloop.data._version import SPLITS, PreparedDataset

__all__ = ["SPLITS", "PreparedDataset"]
