"""Server memory under a header flood: clients each send a huge request header; print RSS before/after.

Runs uvicorn (a one-line ASGI app: the header path does not reach it) with the protocol `dcloop serve`
uses and with plain httptools, so the table shows what the header cap saves.

Usage: .venv/bin/python benchmarks/header_flood.py [--clients 4] [--mib 64]
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SERVER = """
import sys, uvicorn
from dcloop.deploy._protocol import CappedHttpToolsProtocol
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
http = CappedHttpToolsProtocol if sys.argv[1] == "capped" else "httptools"
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="error", http=http)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) // 1024


def _flood(port: int, mib: int) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ")
            for _ in range(mib * 16):
                sock.sendall(b"z" * 65536)
            sock.sendall(b"\r\n\r\n")
            sock.recv(100)
    except OSError:  # the capped server answers 431 and closes long before the header ends
        pass


def measure(protocol: str, clients: int, mib: int) -> tuple[int, int]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, protocol, str(port)])
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.1)
        before = _rss_mb(proc.pid)
        threads = [threading.Thread(target=_flood, args=(port, mib)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return before, _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--mib", type=int, default=64)
    args = parser.parse_args()
    print(f"| protocol | RSS before (MB) | RSS after {args.clients} x {args.mib} MiB headers (MB) |")
    print("|---|---|---|")
    for protocol in ("capped", "httptools"):
        before, after = measure(protocol, args.clients, args.mib)
        print(f"| {protocol} | {before} | {after} |")


if __name__ == "__main__":
    main()
