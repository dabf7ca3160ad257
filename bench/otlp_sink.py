#!/usr/bin/env python3
"""Local OTLP/gRPC metrics sink with a byte-counting TCP proxy in front.

    client --TCP--> [proxy, public port] --Unix socket--> [gRPC server]

The proxy counts every byte the client sends (what goes over the wire: gzip'd
payload, gRPC message framing, HTTP/2 frames and HPACK headers, the HTTP/2
connection preface, SETTINGS/PING/WINDOW_UPDATE frames, ...).  The gRPC server
implements MetricsService/Export, accepts gzip (grpc core decompresses it) and
writes one JSON line per export received:

    {"t": <unix time received>, "bytes_total_so_far": <client->server wire
     bytes so far, all connections>, "data_points": n, "metrics": n,
     "resource": {...attributes of the first ResourceMetrics...}, ...}

On SIGTERM/SIGINT it stops accepting, closes the proxy and the gRPC server and
writes a final line {"summary": true, "exports": n, "wire_bytes": n, ...}.

The hop from the proxy to the gRPC server is a Unix socket, not TCP: the
host's TCP counters (`/proc/net/snmp`: opens, established connections) then
move as a collector's would, by the client's connection alone. The agent's
connections probe reads those counters to decide whether it must list every
socket; a second loopback connection per client would make it do so.

Usage:
    python bench/otlp_sink.py [--host 127.0.0.1] [--port 0] [--out FILE]
                              [--port-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)

PROXY_CHUNK = 64 * 1024


class Counters:
    """Shared between the asyncio proxy thread and the gRPC worker threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.client_bytes = 0  # client -> server
        self.server_bytes = 0  # server -> client
        self.connections = 0
        self.exports = 0
        self.data_points = 0
        # From the HTTP/2 frames the client sends (see H2Sniffer):
        self.msgs_compressed = 0
        self.msgs_uncompressed = 0
        self.last_msg = None  # (compressed_flag, grpc_message_length)

    def add_client(self, n: int) -> None:
        with self.lock:
            self.client_bytes += n

    def add_server(self, n: int) -> None:
        with self.lock:
            self.server_bytes += n


class H2Sniffer:
    """Follows the HTTP/2 frames of one client->server byte stream, just far
    enough to read the 5-byte gRPC message prefix (compressed flag + length)
    at the start of each request stream.  Tells whether the client really
    sends gzip, and how large the compressed message is.  It only looks at
    the first DATA frame of each stream (where a unary request's single
    message starts)."""

    PREFACE = 24  # len(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self.buf = bytearray()
        self.skip = self.PREFACE
        self.started: set[int] = set()
        self.broken = False

    def feed(self, data: bytes) -> None:
        if self.broken:
            return
        self.buf += data
        if self.skip:
            n = min(self.skip, len(self.buf))
            del self.buf[:n]
            self.skip -= n
            if self.skip:
                return
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            ftype = buf[pos + 3]
            flags = buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            if length > (1 << 24):  # not HTTP/2 after all
                self.broken = True
                break
            if ftype == 0 and sid not in self.started:  # first DATA frame
                self.started.add(sid)
                payload = bytes(buf[pos + 9:pos + 9 + length])
                if flags & 0x8 and payload:  # PADDED
                    payload = payload[1:len(payload) - payload[0]]
                if len(payload) >= 5:
                    compressed = payload[0]
                    mlen = int.from_bytes(payload[1:5], "big")
                    with self.counters.lock:
                        if compressed:
                            self.counters.msgs_compressed += 1
                        else:
                            self.counters.msgs_uncompressed += 1
                        self.counters.last_msg = (compressed, mlen)
            pos += 9 + length
        del buf[:pos]


def any_value(v):
    """opentelemetry.proto.common.v1.AnyValue -> plain JSON value."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def count_points(metric) -> int:
    kind = metric.WhichOneof("data")
    if kind is None:
        return 0
    return len(getattr(metric, kind).data_points)


class MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, counters: Counters, out) -> None:
        self.counters = counters
        self.out = out
        self.out_lock = threading.Lock()

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        t = time.time()
        # The proxy counts bytes *before* forwarding them, so everything this
        # request put on the wire is already in the counter here.
        with self.counters.lock:
            wire = self.counters.client_bytes
            conns = self.counters.connections
            last_msg = self.counters.last_msg
        n_metrics = 0
        n_points = 0
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                n_metrics += len(sm.metrics)
                for m in sm.metrics:
                    n_points += count_points(m)
        resource = {}
        if request.resource_metrics:
            resource = {
                kv.key: any_value(kv.value)
                for kv in request.resource_metrics[0].resource.attributes
            }
        rec = {
            "t": t,
            "bytes_total_so_far": wire,
            "data_points": n_points,
            "metrics": n_metrics,
            "resource": resource,
            "resource_metrics": len(request.resource_metrics),
            "payload_bytes": request.ByteSize(),  # uncompressed protobuf size
            # gRPC message prefix of the latest request seen on the wire
            # (exact for exports sent one at a time):
            "grpc_compressed": None if last_msg is None else bool(last_msg[0]),
            "grpc_message_bytes": None if last_msg is None else last_msg[1],
            "connections_so_far": conns,
        }
        with self.counters.lock:
            self.counters.exports += 1
            self.counters.data_points += n_points
        if self.out is not None:
            with self.out_lock:
                self.out.write(json.dumps(rec, sort_keys=True) + "\n")
                self.out.flush()
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def pump(reader, writer, count) -> None:
    try:
        while True:
            data = await reader.read(PROXY_CHUNK)
            if not data:
                break
            count(data)  # count first, then forward (see Export)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.CancelledError):
        pass
    finally:
        # Half-close so the other side sees EOF; ignore if already gone.
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def run_proxy(args, counters: Counters, backend: str, stop: asyncio.Event):
    tasks: set[asyncio.Task] = set()

    async def handle(client_reader, client_writer):
        with counters.lock:
            counters.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(backend)
        except OSError as e:
            print(f"otlp_sink: backend connect failed: {e}", file=sys.stderr)
            client_writer.close()
            return
        sniffer = H2Sniffer(counters)

        def count_client(data: bytes) -> None:
            counters.add_client(len(data))
            sniffer.feed(data)

        a = asyncio.ensure_future(pump(client_reader, up_writer, count_client))
        b = asyncio.ensure_future(pump(up_reader, client_writer,
                                       lambda data: counters.add_server(len(data))))
        tasks.update((a, b))
        try:
            await asyncio.gather(a, b)
        except asyncio.CancelledError:
            pass
        finally:
            tasks.discard(a)
            tasks.discard(b)
            for w in (up_writer, client_writer):
                try:
                    w.close()
                except (OSError, RuntimeError):
                    pass

    server = await asyncio.start_server(handle, args.host, args.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    print(f"otlp_sink listening on {args.host}:{port} "
          f"(grpc backend unix:{backend})", flush=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(args.port_file + ".tmp", args.port_file)

    await stop.wait()
    server.close()
    for t in list(tasks):
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001
        pass


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="public listen address")
    p.add_argument("--port", type=int, default=0, help="public port (0 = pick a free one)")
    p.add_argument("--out", help="JSON-lines file, one line per export + a summary line")
    p.add_argument("--port-file", help="also write the chosen public port to this file")
    args = p.parse_args()

    out = open(args.out, "a", buffering=1) if args.out else None
    counters = Counters()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsSink(counters, out), server)
    backend_dir = tempfile.mkdtemp(prefix="otlp_sink.")
    backend = os.path.join(backend_dir, "grpc.sock")
    if not server.add_insecure_port(f"unix:{backend}"):
        print(f"otlp_sink: could not bind the gRPC backend socket {backend}", file=sys.stderr)
        return 1
    server.start()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        loop.run_until_complete(run_proxy(args, counters, backend, stop))
    except OSError as e:
        print(f"otlp_sink: {e}", file=sys.stderr)
        server.stop(0)
        return 1
    finally:
        loop.close()

    server.stop(grace=1).wait(3)
    shutil.rmtree(backend_dir, ignore_errors=True)
    with counters.lock:
        summary = {
            "summary": True,
            "t": time.time(),
            "exports": counters.exports,
            "wire_bytes": counters.client_bytes,
            "wire_bytes_server_to_client": counters.server_bytes,
            "connections": counters.connections,
            "data_points": counters.data_points,
            "grpc_messages_compressed": counters.msgs_compressed,
            "grpc_messages_uncompressed": counters.msgs_uncompressed,
        }
    line = json.dumps(summary, sort_keys=True)
    if out is not None:
        out.write(line + "\n")
        out.close()
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
