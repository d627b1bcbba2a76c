"""Data intake, cleaning, versioned data sets and splits."""

from dcloop.data._decode import ImageRejected, decode_image
from dcloop.data._extend import extend_dataset
from dcloop.data._prepare import (
    get_dataset,
    import_source,
    list_datasets,
    list_sources,
    load_dataset,
    prepare_dataset,
)
from dcloop.data._tokens import TokenArrays, encode_texts, tokenize_dataset
from dcloop.data._version import SPLITS, PreparedDataset

__all__ = [
    "SPLITS",
    "ImageRejected",
    "PreparedDataset",
    "TokenArrays",
    "decode_image",
    "encode_texts",
    "extend_dataset",
    "get_dataset",
    "import_source",
    "list_datasets",
    "list_sources",
    "load_dataset",
    "prepare_dataset",
    "tokenize_dataset",
]
