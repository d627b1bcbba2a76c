"""What the training loop feeds a model, per modality: the batches of an epoch and a batch's inputs.

One entry per modality in ``batch_sources``; the loop never branches on the modality beyond picking
it. Both draw the epoch's order from the loop's seeded generator only, so a resumed run sees the
same batches.

Text batches are padded to their own longest text (dynamic padding) and grouped by length: the
epoch's permutation is cut into windows of ``bucket`` batches, each window sorted by length and cut
into batches, and the batches shuffled. Every example still appears once per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from dcloop.data import PreparedDataset
from dcloop.errors import DataError
from dcloop.registry import Registry


class Batches(Protocol):
    """One split of a data set on the training device."""

    labels: torch.Tensor
    eval_batch_size: int  # examples per forward pass when validating

    def __len__(self) -> int: ...

    def epoch(self, order: torch.Generator, batch_size: int) -> list[torch.Tensor]:
        """Index batches (on the device) covering every example once, drawn from ``order``."""
        ...

    def inputs(self, index: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        """The model's positional inputs for examples ``index`` (training transforms when ``train``)."""
        ...

    def tokens(self) -> int:
        """Tokens (text) or images in the whole split: what one epoch processes."""
        ...


BatchesBuilder = Callable[..., Batches]
batch_sources: Registry[BatchesBuilder] = Registry("modality")


class ImageBatches:
    """uint8 images scaled to [0, 1], augmented and made channels-last for training."""

    eval_batch_size = 1024

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        device: torch.device,
        augment: nn.Module | None,
        channels_last: bool,
    ) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x)).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.augment, self.channels_last = augment, channels_last

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, order: torch.Generator, batch_size: int) -> list[torch.Tensor]:
        return list(torch.randperm(len(self), generator=order).to(self.x.device).split(batch_size))

    def inputs(self, index: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        images = self.x[index].float().div_(255.0)
        if train and self.augment is not None:
            images = self.augment(images)
        if train and self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return (images,)

    def tokens(self) -> int:
        return len(self)


@batch_sources.register("image")
def _image_batches(
    dataset: PreparedDataset,
    split: str,
    *,
    device: torch.device,
    augment: nn.Module | None,
    channels_last: bool,
    **_: Any,
) -> Batches:
    x, y = dataset.arrays(split)
    return ImageBatches(x, y, device, augment, channels_last)


class TextBatches:
    """Token ids and lengths of one split; a batch is cut to its longest text."""

    eval_batch_size = 64  # attention memory grows with batch x length^2

    def __init__(
        self, ids: np.ndarray, lengths: np.ndarray, y: np.ndarray, device: torch.device, bucket: int
    ) -> None:
        self.ids = torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)).to(device)
        self.lengths = torch.from_numpy(np.ascontiguousarray(lengths, dtype=np.int64)).to(device)
        self.labels = torch.from_numpy(np.ascontiguousarray(y)).to(device)
        self.bucket = bucket

    def __len__(self) -> int:
        return len(self.labels)

    def epoch(self, order: torch.Generator, batch_size: int) -> list[torch.Tensor]:
        return length_buckets(self.lengths.cpu(), order, batch_size, self.bucket, self.ids.device)

    def inputs(self, index: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        lengths = self.lengths[index]
        longest = int(lengths.max()) if len(index) else 1
        ids = self.ids[index, :longest]
        mask = (torch.arange(longest, device=ids.device) < lengths[:, None]).long()
        return ids, mask

    def tokens(self) -> int:
        return int(self.lengths.sum())


def length_buckets(
    lengths: torch.Tensor, order: torch.Generator, batch_size: int, bucket: int, device: torch.device
) -> list[torch.Tensor]:
    """Batches of similar length: a seeded permutation, sorted by length in windows of ``bucket``
    batches, cut into batches whose order is shuffled again (``bucket`` <= 1: plain random batches)."""
    perm = torch.randperm(len(lengths), generator=order)
    if bucket <= 1:
        return [b.to(device) for b in perm.split(batch_size)]
    batches: list[torch.Tensor] = []
    for window in perm.split(batch_size * bucket):
        ranked = window[torch.argsort(lengths[window], descending=True, stable=True)]
        batches.extend(ranked.split(batch_size))
    shuffle = torch.randperm(len(batches), generator=order).tolist()
    return [batches[i].to(device) for i in shuffle]


@batch_sources.register("text")
def _text_batches(
    dataset: PreparedDataset,
    split: str,
    *,
    device: torch.device,
    tokenizer: Any,
    max_length: int,
    length_buckets: int,
    vocab_size: int | None = None,
    **_: Any,
) -> Batches:
    if tokenizer is None:
        raise DataError(
            f"Data set version {dataset.id[:12]} holds text; training it needs the model's tokenizer."
        )
    ids, lengths = token_arrays(dataset, tokenizer, max_length)
    index = dataset.splits[split]
    ids, lengths = np.asarray(ids[index]), np.asarray(lengths[index])
    if vocab_size is not None and ids.size and int(ids.max()) >= vocab_size:
        raise DataError(
            f"The tokenizer gives token id {int(ids.max())} but the model's vocabulary has {vocab_size} "
            "entries: the tokenizer does not belong to this model."
        )
    return TextBatches(ids, lengths, dataset.y[index], device, length_buckets)


def token_arrays(dataset: PreparedDataset, tokenizer: Any, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, lengths) of every text: from the token cache beside a stored version, encoded in memory
    for a version that is not at rest (no folder)."""
    from dcloop.data import encode_texts, tokenize_dataset

    if dataset.record.path:
        arrays = tokenize_dataset(dataset, tokenizer, max_length)
        return arrays.ids, arrays.lengths
    return encode_texts(tokenizer, list(dataset.x), max_length)


def build_batches(dataset: PreparedDataset, split: str, **options: Any) -> Batches:
    """The ``split`` of ``dataset`` as its modality batches it; ``options`` go to that entry."""
    return batch_sources.get(dataset.modality)(dataset, split, **options)
