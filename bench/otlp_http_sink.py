#!/usr/bin/env python3
"""Local OTLP/HTTP (protobuf) metrics sink, standard library only.

Answers every POST with 200 and an empty ExportMetricsServiceResponse and
writes one JSON line per request:

    {"t": <unix time received>, "path": "/v1/metrics",
     "content_encoding": "gzip" | "", "body_bytes": <bytes on the wire>,
     "payload_bytes": <protobuf bytes after gunzip>}

It does not parse the protobuf (no third-party packages): it only checks
that a gzip body inflates, and answers 400 when it does not. `--save-last
FILE` keeps the latest uncompressed request in FILE, a real payload to
measure compression on.

Usage:
    python3 bench/otlp_http_sink.py [--host 127.0.0.1] [--port 0] [--out FILE]
                                    [--port-file FILE] [--save-last FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as a collector does: the agent reuses its connection.
    protocol_version = "HTTP/1.1"
    out = None
    save_last = None
    out_lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        t = time.time()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        enc = self.headers.get("Content-Encoding", "")
        try:
            payload = gzip.decompress(body) if enc == "gzip" else body
        except (OSError, EOFError) as e:
            self.answer(400, str(e).encode())
            return
        rec = {
            "t": t,
            "path": self.path,
            "content_encoding": enc,
            "body_bytes": len(body),
            "payload_bytes": len(payload),
        }
        if Handler.save_last:
            with open(Handler.save_last + ".tmp", "wb") as f:
                f.write(payload)
            os.replace(Handler.save_last + ".tmp", Handler.save_last)
        if Handler.out is not None:
            with Handler.out_lock:
                Handler.out.write(json.dumps(rec, sort_keys=True) + "\n")
                Handler.out.flush()
        # An empty ExportMetricsServiceResponse encodes as zero bytes.
        self.answer(200, b"", "application/x-protobuf")

    def answer(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--port-file")
    ap.add_argument("--save-last")
    a = ap.parse_args()
    Handler.save_last = a.save_last
    if a.out:
        Handler.out = open(a.out, "a", encoding="utf-8")
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"otlp_http_sink listening on {a.host}:{port}", flush=True)

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
