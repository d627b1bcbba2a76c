"""Serving throughput: `dcloop serve` (dynamic batching, every prediction stored) against a plain
one-request-one-inference FastAPI handler on the same ONNX model; prints a table.

Both servers run as separate processes on loopback; one asyncio load generator (a minimal HTTP/1.1
client over keep-alive connections) on the same machine sends a bounded number of requests per
setting (--requests) within a time cap (--seconds); `--load wrk` uses wrk instead (C, one thread, for
--seconds), which leaves more of the shared cores to the servers. The plain handler does less work (it stores
nothing), so the ratio is conservative. dcloop also runs with `feedback.log_predictions` off, which
prices storing every prediction. These three /predict servers run side by side and take turns for
--rounds rounds, in a rotating order; each ratio is the median of the rounds' ratios (a shared
machine's speed drifts from minute to minute, less within a round). A reference row "plain handler
+ per-request logging" is the same handler committing each prediction to a SQLite WAL file
(synchronous=FULL) before answering. Each row also
gives the server's CPU time per request (its process and any children), which other jobs on shared
cores move much less than req/s and p99.

Usage: .venv/bin/python benchmarks/serve_throughput.py [--model seed-cnn] [--requests 3000] [--seconds 8]
       [--rounds 3] [--load wrk] [--workers N|auto] [--plain-workers 2] [--bentoml-venv /tmp/bento-venv]   (a separate venv: pip install bentoml==1.4.40 onnxruntime numpy)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import yaml
from fastapi import FastAPI, Request  # module level: the plain handler's annotations must resolve

CLASSES = [f"class{i}" for i in range(10)]
P99_TARGET_MS = 50.0
UNLOGGED = "dcloop /predict, log off"
PLAIN = "plain /predict"


def plain_app(onnx_path: str, db_path: str | None = None):
    """The baseline: parse JSON pixels, run one ONNX inference per request, answer. No batching.

    With ``db_path`` each prediction is also inserted and committed (one transaction per request) into
    a SQLite WAL file with synchronous=FULL, as dcloop's store is, before answering."""
    import sqlite3
    import uuid

    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    db = None
    if db_path is not None:
        db = sqlite3.connect(db_path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS predictions (id TEXT PRIMARY KEY, created_at REAL, input BLOB, "
            "label TEXT, probabilities TEXT)"
        )
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, object]:
        raw = np.asarray((await request.json())["pixels"], dtype=np.float32)
        logits = session.run(["logits"], {"input": raw[None, None] / 255})[0][0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        label, probabilities = CLASSES[int(probs.argmax())], dict(zip(CLASSES, probs.tolist(), strict=True))
        if db is not None:
            with db:  # one commit per request
                row = (
                    uuid.uuid4().hex,
                    time.time(),
                    raw.astype(np.uint8).tobytes(),
                    label,
                    json.dumps(probabilities),
                )
                db.execute("INSERT INTO predictions VALUES (?, ?, ?, ?, ?)", row)
        return {"label": label, "probabilities": probabilities}

    return app


BENTO_SERVICE = """
import os

import bentoml
import numpy as np


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["BENCH_ONNX"], providers=["CPUExecutionProvider"])

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=1000)
    def predict(self, pixels: np.ndarray) -> np.ndarray:
        x = pixels.astype(np.float32)[:, None] / 255
        logits = self.session.run(["logits"], {"input": x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, path: str = "/v2/health/ready", timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


async def _load(
    url: str, path: str, body: bytes, headers: dict[str, str], concurrency: int, total: int, seconds: float
):
    """``concurrency`` keep-alive connections, each sending one request at a time, until ``total``
    requests or ``seconds``. A minimal HTTP/1.1 client: a Python HTTP library would cost more CPU
    per request than the servers under test, and everything shares the same cores."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n{head}\r\n"
    ).encode() + body
    latencies: list[float] = []
    errors = sent = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors, sent
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while sent < total and time.perf_counter() < deadline:
                sent += 1
                start = time.perf_counter()
                writer.write(request)
                status, length = await _read_head(reader)
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                errors += status != 200
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return len(latencies) / wall, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), errors, len(ms)


WRK_SCRIPT = """
local f = io.open(os.getenv("BENCH_BODY"), "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
for name, value in string.gmatch(os.getenv("BENCH_HEADERS"), "([^\\n:]+): ([^\\n]+)") do
  wrk.headers[name] = value
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def _load_wrk(url: str, path: str, body: bytes, headers: dict[str, str], concurrency: int, seconds: float):
    """The same load from wrk (one thread, ``concurrency`` keep-alive connections, for ``seconds``): a
    C load generator that leaves the shared cores to the servers under test."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "body").write_bytes(body)
        (Path(folder) / "load.lua").write_text(WRK_SCRIPT, encoding="utf-8")
        env = {
            **os.environ,
            "BENCH_BODY": str(Path(folder) / "body"),
            "BENCH_HEADERS": "\n".join(f"{k}: {v}" for k, v in headers.items()),
        }
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
        done = subprocess.run(
            [*cmd, "-s", str(Path(folder) / "load.lua"), f"{url}{path}"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK "))
    n, duration_us, errors, p50_us, p99_us = (int(v) for v in line.split()[1:])
    return n / (duration_us / 1e6), p50_us / 1000, p99_us / 1000, errors, n


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return int(lines[0].split(" ")[1]), length


def _bodies(rng: np.random.Generator, batch: int) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    predict = json.dumps({"pixels": pixels.tolist()}).encode()
    out = {"predict": ("/predict", predict, {"content-type": "application/json"})}
    for name, n in (("oip", 1), ("oip-batch", batch)):
        x = rng.random((n, 1, 28, 28), dtype=np.float32)
        spec = {
            "name": "input",
            "datatype": "FP32",
            "shape": list(x.shape),
            "parameters": {"binary_data_size": x.nbytes},
        }
        head = json.dumps(
            {"inputs": [spec], "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}
        ).encode()
        out[name] = (
            "/v2/models/bench/infer",
            head + x.tobytes(),
            {"Inference-Header-Content-Length": str(len(head))},
        )
    return out


def _serve(
    cmd: list[str], cwd: Path, ready: str = "/v2/health/ready", env=None
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, ready)
    return proc, url


@contextlib.contextmanager
def _serving(cmd: list[str], cwd: Path, **kwargs) -> Iterator[tuple[subprocess.Popen, str]]:
    """A server process, ready, for the ``with`` block; stopped after it."""
    server, url = _serve(cmd, cwd, **kwargs)
    try:
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _cpu_seconds(server: subprocess.Popen) -> float:
    """User + system CPU time a server and its child processes have used so far."""
    import psutil

    root = psutil.Process(server.pid)
    times = [p.cpu_times() for p in [root, *root.children(recursive=True)]]
    return sum(t.user + t.system for t in times)


def _sweep(
    server: subprocess.Popen,
    url: str,
    label: str,
    body: tuple[str, bytes, dict[str, str]],
    levels: list[int],
    images: int,
    args,
    round_: int = -1,
) -> list[list]:
    """One row per concurrency level: label, clients, req/s, images/s, p50, p99, errors, the server's
    CPU time per request (us; a figure that moves less than req/s when other jobs share the cores) and
    the round (-1: measured once, outside the rounds)."""
    rows = []
    for c in levels:
        before = _cpu_seconds(server)
        if args.load == "wrk":
            rps, p50, p99, errors, n = _load_wrk(url, *body, c, args.seconds)
        else:
            rps, p50, p99, errors, n = asyncio.run(_load(url, *body, c, args.requests, args.seconds))
        cpu_us = (_cpu_seconds(server) - before) / max(n, 1) * 1e6
        rows.append([label, c, rps, rps * images, p50, p99, errors, cpu_us, round_])
        print(
            f"  {label:<35} c={c:<3} {rps:8.0f} req/s {rps * images:9.0f} img/s  p50 {p50:6.1f} ms  "
            f"p99 {p99:6.1f} ms  errors {errors}  server CPU {cpu_us:5.0f} us/req",
            flush=True,
        )
    return rows


def _best(rows: list[list], label: str, round_: int | None = None) -> list | None:
    """The row of ``label`` (in ``round_``, or any) with the most images/s at p99 <= target, no errors."""
    ok = [r for r in rows if r[0] == label and r[5] <= P99_TARGET_MS and r[6] == 0]
    ok = [r for r in ok if round_ is None or r[8] == round_]
    return max(ok, key=lambda r: r[3]) if ok else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", default="seed-cnn", help="Zoo model to export (random weights; speed only)."
    )
    parser.add_argument("--requests", type=int, default=4000, help="Most requests per setting.")
    parser.add_argument("--seconds", type=float, default=3.0, help="Time cap per setting.")
    parser.add_argument(
        "--load",
        choices=["wrk", "python"],
        default="python",
        help="Load generator: a minimal asyncio client (default) or wrk (C; apt install wrk), which leaves "
        "more of the shared cores to the servers.",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="Rounds of the /predict comparison, the servers taking turns."
    )
    parser.add_argument("--concurrency", default="1,16,32,64,128", help="Concurrent clients to sweep.")
    parser.add_argument("--batch", type=int, default=64, help="Images per batched OIP request.")
    parser.add_argument(
        "--delay-ms", type=float, help="serve.max_queue_delay_ms (default: the config default)."
    )
    parser.add_argument("--max-batch", type=int, help="serve.max_batch_size (default: the config default).")
    parser.add_argument(
        "--workers",
        type=lambda v: v if v == "auto" else int(v),
        help="serve.workers: dcloop server processes, a number or auto (default: the config's, auto).",
    )
    parser.add_argument(
        "--plain-workers",
        type=int,
        default=1,
        help="Also run the plain handler as this many uvicorn worker processes (a fourth contender).",
    )
    parser.add_argument(
        "--bentoml-venv", help="A separate venv with bentoml: also measure a BentoML service."
    )
    parser.add_argument("--plain-server", help=argparse.SUPPRESS)
    parser.add_argument("--log-db", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        import uvicorn

        if args.plain_workers > 1:  # uvicorn's worker processes build the app from an import string
            os.environ["BENCH_PLAIN_ONNX"] = args.plain_server
            uvicorn.run(
                "serve_throughput:_plain_from_env",
                factory=True,
                workers=args.plain_workers,
                app_dir=str(Path(__file__).parent),
                host="127.0.0.1",
                port=args.port,
                log_level="warning",
                access_log=False,
            )
            return
        app = plain_app(args.plain_server, args.log_db)
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
        )
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import torch

    from dcloop.deploy import promote, register_model_version
    from dcloop.optimize import export_onnx
    from dcloop.train._models import create_model
    from dcloop.workspace import init_workspace

    tmp = Path(tempfile.mkdtemp(prefix="dcloop-bench-"))
    logged_ws, unlogged_ws = init_workspace(tmp / "ws"), init_workspace(tmp / "ws-log-off")
    serve_cfg = {
        "max_queue_delay_ms": args.delay_ms,
        "max_batch_size": args.max_batch,
        "workers": args.workers,
    }
    config = logged_ws.config.model_dump(mode="json")
    config["serve"].update({k: v for k, v in serve_cfg.items() if v is not None})
    torch.manual_seed(0)
    onnx_path = export_onnx(create_model(args.model, 1, 10, 28), tmp / "model.onnx", input_shape=(1, 28, 28))
    for ws, log_on in ((logged_ws, True), (unlogged_ws, False)):
        # the second workspace has feedback.log_predictions off: what storing every prediction costs
        config["feedback"]["log_predictions"] = log_on
        (ws.root / "dcloop.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        register_model_version(ws, onnx_path, name="bench", classes=CLASSES)
        promote(ws, "bench", version=1)
    bodies = _bodies(np.random.default_rng(0), args.batch)
    print(
        f"model {args.model} 1x28x28 -> 10 classes; {os.cpu_count()} CPUs; "
        f"<= {args.requests} requests or {args.seconds:.0f} s per setting, load from {args.load}; "
        f"{args.rounds} round(s); serve config {config['serve']}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows: list[list] = []
    dcloop_serve = [sys.executable, "-m", "dcloop.cli", "serve", "--model", "bench@champion"]
    with contextlib.ExitStack() as servers:
        # the three /predict servers run side by side (an idle one uses no CPU) and take turns within
        # each round, in a rotating order: a shared machine's speed drifts between minutes, less within
        # a round, so the ratio of each round is the steadier figure
        contenders = [
            ("dcloop /predict", servers.enter_context(_serving(dcloop_serve, logged_ws.root))),
            (UNLOGGED, servers.enter_context(_serving(dcloop_serve, unlogged_ws.root))),
            (
                PLAIN,
                servers.enter_context(
                    _serving([sys.executable, __file__, "--plain-server", str(onnx_path)], tmp)
                ),
            ),
        ]
        if args.plain_workers > 1:
            plain_n = [sys.executable, __file__, "--plain-server", str(onnx_path)]
            plain_n += ["--plain-workers", str(args.plain_workers)]
            contenders.append(
                (plain_label(args.plain_workers), servers.enter_context(_serving(plain_n, tmp)))
            )
        for round_ in range(args.rounds):
            shift = round_ % len(contenders)
            turn = contenders[shift:] + contenders[:shift]
            for label, (server, url) in turn:
                rows += _sweep(server, url, label, bodies["predict"], levels, 1, args, round_)
        server, url = contenders[0][1]
        rows += _sweep(server, url, "dcloop OIP infer", bodies["oip"], levels, 1, args)
        rows += _sweep(
            server, url, f"dcloop OIP batch {args.batch}", bodies["oip-batch"], [1, 2, 4, 8], args.batch, args
        )
    logging_plain = [
        sys.executable,
        __file__,
        "--plain-server",
        str(onnx_path),
        "--log-db",
        str(tmp / "plain-log.db"),
    ]
    with _serving(logging_plain, tmp) as (server, url):
        rows += _sweep(server, url, "plain handler + per-request logging", bodies["predict"], levels, 1, args)
    if args.bentoml_venv:
        rows += _bentoml(args, tmp, onnx_path, levels)
    _print_summary(rows, args.batch, args.plain_workers)


def _plain_from_env():
    """The plain handler in each of uvicorn's worker processes (``--plain-workers``)."""
    return plain_app(os.environ["BENCH_PLAIN_ONNX"])


def plain_label(workers: int) -> str:
    return f"plain /predict, {workers} workers"


def _bentoml(args, tmp: Path, onnx_path: Path, levels: list[int]) -> list[list]:
    """The same model behind BentoML's adaptive batching (JSON in, JSON out), from its own venv."""
    (tmp / "bento_service.py").write_text(BENTO_SERVICE, encoding="utf-8")
    env = {**os.environ, "BENCH_ONNX": str(onnx_path), "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [str(Path(args.bentoml_venv) / "bin" / "bentoml"), "serve", "bento_service:Classifier"]
    pixels = np.random.default_rng(0).integers(0, 256, (1, 28, 28)).tolist()
    body = ("/predict", json.dumps({"pixels": pixels}).encode(), {"content-type": "application/json"})
    with _serving(cmd, tmp, ready="/readyz", env=env) as (server, url):
        return _sweep(server, url, "bentoml /predict", body, levels, 1, args)


def _print_summary(rows: list[list], batch: int, plain_workers: int = 1) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"best throughput with p99 <= {P99_TARGET_MS:.0f} ms and no errors", title_justify="left"
    )
    for column in ("endpoint", "clients", "req/s", "images/s", "p50 ms", "p99 ms", "server CPU us/req"):
        table.add_column(column)
    best = {}
    labels = ["dcloop /predict", UNLOGGED, "dcloop OIP infer", f"dcloop OIP batch {batch}", PLAIN]
    labels += [plain_label(plain_workers)] if plain_workers > 1 else []
    labels += ["plain handler + per-request logging"]
    labels += ["bentoml /predict"] if any(r[0] == "bentoml /predict" for r in rows) else []
    for label in labels:
        row = best[label] = _best(rows, label)
        if row is not None:
            table.add_row(
                label,
                str(row[1]),
                f"{row[2]:,.0f}",
                f"{row[3]:,.0f}",
                f"{row[4]:.1f}",
                f"{row[5]:.1f}",
                f"{row[7]:.0f}",
            )
        else:
            table.add_row(label, "-", "-", "-", "-", f"none <= {P99_TARGET_MS:.0f}", "-")
    Console().print(table)
    batched = max((r for r in rows if r[0] == f"dcloop OIP batch {batch}"), key=lambda r: r[3])
    print(
        f"dcloop OIP batch {batch}: peak {batched[3]:,.0f} images/s at {batched[1]} clients (p99 {batched[5]:.0f} ms)"
    )
    rounds = sorted({r[8] for r in rows if r[0] == PLAIN})

    def pairs(label: str, against: str) -> list[tuple[list, list]]:
        """The best rows of ``label`` and ``against`` in each round where both met the p99 target."""
        best_rows = [(_best(rows, label, k), _best(rows, against, k)) for k in rounds]
        return [(a, b) for a, b in best_rows if a is not None and b is not None]

    def per_round(label: str, against: str) -> list[float]:
        return [a[3] / b[3] for a, b in pairs(label, against)]

    def spread(values: list[float], form: str = "{:.2f}") -> str:
        if len(values) < 2:
            return ""
        return f" (rounds: {', '.join(form.format(v) for v in values)})"

    kept = per_round("dcloop /predict", UNLOGGED)
    if kept:
        cost = [1 - v for v in kept]
        print(
            f"storing every prediction costs dcloop /predict {statistics.median(cost):.1%} of its throughput, "
            f"median of {len(cost)} round(s){spread(cost, '{:.1%}')} (target <= 10%), and "
            f"{statistics.median(a[7] - b[7] for a, b in pairs('dcloop /predict', UNLOGGED)):.0f} us of "
            "server CPU per request"
        )
    for label in labels:
        if label == PLAIN or best[label] is None or best[PLAIN] is None:
            continue
        ratios = per_round(label, PLAIN)
        if ratios:  # measured in the rounds, beside the plain handler
            print(
                f"{label}: {statistics.median(ratios):.2f}x the plain handler's images/s, median of "
                f"{len(ratios)} round(s){spread(ratios)}"
            )
        else:  # measured once, after the rounds: against the plain handler's best round
            print(f"{label}: {best[label][3] / best[PLAIN][3]:.2f}x the plain handler's best images/s")
    if plain_workers > 1 and (ratios := per_round("dcloop /predict", plain_label(plain_workers))):
        print(
            f"dcloop /predict: {statistics.median(ratios):.2f}x the plain handler run as {plain_workers} "
            f"worker processes, median of {len(ratios)} round(s){spread(ratios)}"
        )


if __name__ == "__main__":
    main()
