"""Measures server-side scan planning on a table with many data files.

    python benches/plan_scan.py --uri http://127.0.0.1:8181 [--files-per-commit 100 --commits 100]

Creates a table partitioned by `part` (one data file per partition per commit, so each
commit adds `--files-per-commit` files in one manifest), then times `POST .../plan` without a
filter and with a one-partition filter, next to PyIceberg's own client-side planning of the
same scans. Needs pyiceberg[pyarrow] (the test venv has it). Prints a small table.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
import uuid

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import AlwaysTrue, EqualTo
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, NestedField


def plan(uri: str, ns: str, table: str, body: dict) -> int:
    """Plans through the server, fetching every plan task; returns the number of data files."""
    base = f"{uri}/v1/namespaces/{ns}/tables/{table}"

    def post(path: str, payload: dict) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.load(resp)

    result = post("/plan", body)
    files = len(result.get("file-scan-tasks", []))
    for task in result.get("plan-tasks", []):
        files += len(post("/tasks", {"plan-task": task})["file-scan-tasks"])
    return files


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", required=True)
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--files-per-commit", type=int, default=100)
    args = parser.parse_args()
    uri = args.uri.rstrip("/")

    catalog = load_catalog("bench", type="rest", uri=uri)
    ns = f"plan_bench_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(ns)
    schema = Schema(NestedField(1, "id", LongType(), required=False), NestedField(2, "part", LongType(), required=False))
    spec = PartitionSpec(PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="part"))
    table = catalog.create_table(f"{ns}.many", schema=schema, partition_spec=spec)

    start = time.perf_counter()
    n = args.files_per_commit
    for c in range(args.commits):
        ids = list(range(c * n, (c + 1) * n))
        table.append(pa.table({"id": pa.array(ids, pa.int64()), "part": pa.array([i % n for i in ids], pa.int64())}))
    table = catalog.load_table(f"{ns}.many")
    manifests = len(table.current_snapshot().manifests(table.io))
    print(f"filled: {args.commits * n} data files in {manifests} manifests in {time.perf_counter() - start:.1f} s")

    rows = []
    for label, body, expr in [
        ("no filter", {}, AlwaysTrue()),
        ("one partition (part = 7)", {"filter": {"type": "eq", "term": "part", "value": 7}}, EqualTo("part", 7)),
    ]:
        server_s, server_files = timed(lambda: plan(uri, ns, "many", body))
        client_s, client_files = timed(lambda: len(list(table.scan(row_filter=expr).plan_files())))
        assert server_files == client_files, (label, server_files, client_files)
        rows.append((label, server_files, server_s * 1000, client_s * 1000))
    print(f"{'scan':28} {'files':>6} {'serac plan ms':>14} {'pyiceberg ms':>13}")
    for label, files, server_ms, client_ms in rows:
        print(f"{label:28} {files:>6} {server_ms:>14.1f} {client_ms:>13.1f}")


if __name__ == "__main__":
    main()
