"""The peer the budgets compare against: OpenTelemetry Python's
system-metrics instrumentation doing its default job, exported over
OTLP/gRPC (gzip) at the same interval as the agent.

Honours OTEL_EXPORTER_OTLP_ENDPOINT and UNAMENTIS_AGENT_INTERVAL (e.g. 5s)
so bench/overhead.sh can run it exactly like the agent; SIGTERM flushes
and exits 0.
"""

import os
import signal
import sys
import threading

from opentelemetry import metrics
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader


def interval_ms(text: str) -> int:
    for suffix, mul in (("ms", 1), ("s", 1000), ("m", 60_000)):
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * mul)
    return int(text)


def main() -> int:
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4317")
    every = interval_ms(os.environ.get("UNAMENTIS_AGENT_INTERVAL", "5s"))
    exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True, compression=Compression.Gzip)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=every)
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    SystemMetricsInstrumentor().instrument()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
