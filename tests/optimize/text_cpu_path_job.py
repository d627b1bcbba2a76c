"""One text int8 pass under the CPU path the environment sets (run by test_text_cpu_paths.py).

Builds a tiny text-tiny model, exports it, fuses its graph, quantizes it to dynamic int8 and runs
every file under ONNX Runtime at two batch shapes; prints one JSON line of what it saw.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from dcloop.optimize._onnx import onnx_session
    from dcloop.optimize._text_onnx import export_text_onnx, max_abs_diff, text_onnx_logits, torch_text_logits
    from dcloop.optimize._text_quantize import bert_dims, fuse_transformer, quantize_dynamic_int8
    from dcloop.train import create_model

    torch.manual_seed(0)
    model = create_model("text-tiny", num_classes=3, vocab_size=100, layers=2, width=32, max_length=32).eval()
    rng = np.random.default_rng(0)
    report: dict[str, object] = {"finite": True, "fp32_diff": 0.0, "fused_diff": 0.0, "int8_diff": 0.0}
    agree, total, int8_logits = 0, 0, []
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        export_text_onnx(model, folder / "fp32.onnx", 32)
        dims = bert_dims(model)
        assert dims is not None
        report["fusions"] = fuse_transformer(folder / "fp32.onnx", folder / "fused.onnx", *dims)
        quantize_dynamic_int8(folder / "fused.onnx", folder / "int8.onnx", per_channel=True)
        sessions = {
            name: onnx_session(folder / f"{name}.onnx", threads=2) for name in ("fp32", "fused", "int8")
        }
        for n, longest in ((4, 9), (33, 32)):
            lengths = rng.integers(1, longest + 1, size=n).astype(np.int32)
            lengths[0] = longest
            ids = rng.integers(5, 100, size=(n, 32)).astype(np.int32)
            ids[np.arange(32)[None, :] >= lengths[:, None]] = 0
            expected = torch_text_logits(model, ids, lengths)
            got = {name: text_onnx_logits(s, ids, lengths) for name, s in sessions.items()}
            report["finite"] = bool(report["finite"]) and all(
                bool(np.isfinite(g).all()) for g in got.values()
            )
            report["fp32_diff"] = max(float(report["fp32_diff"]), max_abs_diff(expected, got["fp32"]))  # type: ignore[arg-type]
            report["fused_diff"] = max(float(report["fused_diff"]), max_abs_diff(expected, got["fused"]))  # type: ignore[arg-type]
            report["int8_diff"] = max(float(report["int8_diff"]), max_abs_diff(expected, got["int8"]))  # type: ignore[arg-type]
            int8_logits.append(got["int8"].ravel().tolist())
            agree += int((got["int8"].argmax(1) == expected.argmax(1)).sum())
            total += n
    report["int8_agreement"] = agree / total
    report["int8_logits"] = int8_logits
    print(json.dumps(report))


if __name__ == "__main__":
    sys.exit(main())
