"""Batched prediction on raw texts: class probabilities and the pooled embeddings drift compares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dcloop.errors import DataError


def predict_texts(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(probs (N, K) float32, embeddings (N, D) float32) of ``texts``, in eval mode on the model's
    device. Texts are tokenized with ``tokenizer`` (cut at ``max_length``) and run in batches of
    similar length, each padded to its own longest; results come back in input order."""
    import torch

    from dcloop.data import encode_texts
    from dcloop.train._metrics import probabilities

    if tokenizer is None:
        raise DataError("Predicting texts needs the model's tokenizer (tokenizer.json beside model.json).")
    ids, lengths = encode_texts(tokenizer, list(texts), max_length)
    if ids.size and int(ids.max()) >= model.vocab_size:
        raise DataError(
            f"The tokenizer gives token id {int(ids.max())} but the model's vocabulary has {model.vocab_size} "
            "entries: the tokenizer does not belong to this model."
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort(-lengths, kind="stable")  # similar lengths together: less padding
    probs = np.zeros((len(texts), model.head.out_features), dtype=np.float32)
    embeddings = np.zeros((len(texts), model.head.in_features), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            longest = max(int(lengths[index].max()), 1)
            batch = torch.from_numpy(ids[index, :longest].astype(np.int64)).to(device)
            mask = (
                torch.arange(longest, device=device) < torch.from_numpy(lengths[index]).to(device)[:, None]
            ).long()
            embedded = model.embed(batch, mask)
            probs[index] = probabilities(model.head(embedded).float()).cpu().numpy()
            embeddings[index] = embedded.float().cpu().numpy()
    model.train(was_training)
    return probs, embeddings
