"""End-to-end tests of Serac with the real PyIceberg REST client.

Run against a live server:

    SERAC_URI=http://127.0.0.1:8181 pytest -q tests/clients

`tests/run.sh` starts a server per storage backend (sqlite, postgres) and runs
this file against each of them. Every test uses names with a random suffix so
reruns against the same server never clash.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid

import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    DoubleType,
    LongType,
    NestedField,
    StringType,
    TimestampType,
)

SERAC_URI = os.environ.get("SERAC_URI")
BACKEND = os.environ.get("SERAC_BACKEND", "unknown")

pytestmark = pytest.mark.skipif(
    not SERAC_URI, reason="SERAC_URI is not set (tests/run.sh starts a server and sets it)"
)

CATEGORIES = ["alpha", "beta", "gamma", "delta"]
BASE_TS = dt.datetime(2024, 3, 1, 12, 0, 0)

ARROW_SCHEMA_V1 = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("category", pa.string()),
    ]
)
ARROW_SCHEMA_V2 = ARROW_SCHEMA_V1.append(pa.field("score", pa.float64()))


def _catalog():
    return load_catalog("serac", type="rest", uri=SERAC_URI)


def _suffix() -> str:
    return uuid.uuid4().hex[:12]


def _rows_v1(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.Table.from_pydict(
        {
            "id": ids,
            "name": [f"name-{i}" for i in ids],
            # spread rows over ~10 days so the day(ts) partition has several values
            "ts": [BASE_TS + dt.timedelta(hours=i % 240) for i in ids],
            "category": [CATEGORIES[i % len(CATEGORIES)] for i in ids],
        },
        schema=ARROW_SCHEMA_V1,
    )


def _rows_v2(start: int, count: int) -> pa.Table:
    v1 = _rows_v1(start, count)
    scores = pa.array([i * 0.5 for i in range(start, start + count)], type=pa.float64())
    return v1.append_column(ARROW_SCHEMA_V2.field("score"), scores)


def _ns_names(catalog) -> set[tuple[str, ...]]:
    return {tuple(ns) for ns in catalog.list_namespaces()}


def _table_names(catalog, namespace: str) -> set[tuple[str, ...]]:
    return {tuple(t) for t in catalog.list_tables(namespace)}


def test_config_endpoint_answers():
    catalog = _catalog()
    # load_catalog already fetched /v1/config; listing must work on a fresh catalog
    assert isinstance(catalog.list_namespaces(), list)


def test_end_to_end_lifecycle():
    catalog = _catalog()
    sfx = _suffix()
    ns = f"e2e_{BACKEND}_{sfx}"
    ns_props = {"owner": "serac-tests", "purpose": "pyiceberg e2e", "run": sfx}

    # --- namespaces -----------------------------------------------------------
    catalog.create_namespace(ns, properties=ns_props)
    assert (ns,) in _ns_names(catalog)
    loaded_props = catalog.load_namespace_properties(ns)
    for k, v in ns_props.items():
        assert loaded_props.get(k) == v, f"namespace property {k}: {loaded_props!r}"
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace(ns)

    # property update round trip
    summary = catalog.update_namespace_properties(ns, removals={"purpose"}, updates={"extra": "1"})
    assert "purpose" in summary.removed
    assert "extra" in summary.updated
    loaded_props = catalog.load_namespace_properties(ns)
    assert "purpose" not in loaded_props
    assert loaded_props.get("extra") == "1"
    assert loaded_props.get("owner") == "serac-tests"

    # --- create a partitioned table ------------------------------------------
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "ts", TimestampType(), required=False),
        NestedField(4, "category", StringType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(source_id=4, field_id=1000, transform=IdentityTransform(), name="category"),
        PartitionField(source_id=3, field_id=1001, transform=DayTransform(), name="ts_day"),
    )
    ident = f"{ns}.events_{sfx}"
    table = catalog.create_table(ident, schema=schema, partition_spec=spec, properties={"created-by": "e2e"})
    assert table.metadata.properties.get("created-by") == "e2e"
    assert table.current_snapshot() is None
    assert table.scan().to_arrow().num_rows == 0
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table(ident, schema=schema)

    # the partition spec survives a reload from the catalog
    reloaded = catalog.load_table(ident)
    fields = reloaded.spec().fields
    assert [(f.name, str(f.transform)) for f in fields] == [("category", "identity"), ("ts_day", "day")]
    assert [f.name for f in reloaded.schema().fields] == ["id", "name", "ts", "category"]

    # --- first append --------------------------------------------------------
    n1 = 300
    batch1 = _rows_v1(0, n1)
    table.append(batch1)
    table = catalog.load_table(ident)
    assert len(table.metadata.snapshots) == 1
    first_snapshot_id = table.current_snapshot().snapshot_id
    assert table.current_snapshot().summary["added-records"] == str(n1)

    data = table.scan().to_arrow()
    assert data.num_rows == n1
    assert sum(data.column("id").to_pylist()) == sum(range(n1))
    by_id = {r["id"]: r for r in data.to_pylist()}
    assert by_id[7]["name"] == "name-7"
    assert by_id[7]["category"] == CATEGORIES[7 % 4]
    assert by_id[7]["ts"] == BASE_TS + dt.timedelta(hours=7)

    # partition filter prunes to one category
    only_beta = table.scan(row_filter="category == 'beta'").to_arrow()
    assert only_beta.num_rows == n1 // 4
    assert set(only_beta.column("category").to_pylist()) == {"beta"}

    # --- schema evolution ----------------------------------------------------
    with table.update_schema() as update:
        update.add_column("score", DoubleType())
    table = catalog.load_table(ident)
    assert [f.name for f in table.schema().fields] == ["id", "name", "ts", "category", "score"]
    assert len(table.metadata.schemas) == 2

    n2 = 120
    batch2 = _rows_v2(n1, n2)
    table.append(batch2)
    table = catalog.load_table(ident)
    assert len(table.metadata.snapshots) == 2
    second_snapshot = table.current_snapshot()
    assert second_snapshot.snapshot_id != first_snapshot_id
    assert second_snapshot.parent_snapshot_id == first_snapshot_id

    data = table.scan().to_arrow()
    assert data.num_rows == n1 + n2
    assert "score" in data.column_names
    assert sum(data.column("id").to_pylist()) == sum(range(n1 + n2))
    rows = {r["id"]: r for r in data.to_pylist()}
    assert all(rows[i]["score"] is None for i in range(n1)), "old rows must read score as null"
    assert all(rows[i]["score"] == i * 0.5 for i in range(n1, n1 + n2))

    # --- time travel to the first snapshot -------------------------------------
    old = table.scan(snapshot_id=first_snapshot_id).to_arrow()
    assert old.num_rows == n1
    assert sorted(old.column("id").to_pylist()) == list(range(n1))
    assert "score" not in old.column_names, "time travel must use the snapshot's schema"
    assert old.column_names == ["id", "name", "ts", "category"]

    # --- list, rename, drop ----------------------------------------------------
    assert (ns, f"events_{sfx}") in _table_names(catalog, ns)
    new_ident = f"{ns}.renamed_{sfx}"
    catalog.rename_table(ident, new_ident)
    names = _table_names(catalog, ns)
    assert (ns, f"renamed_{sfx}") in names
    assert (ns, f"events_{sfx}") not in names
    assert not catalog.table_exists(ident)
    with pytest.raises(NoSuchTableError):
        catalog.load_table(ident)

    renamed = catalog.load_table(new_ident)
    assert renamed.metadata.table_uuid == table.metadata.table_uuid
    assert renamed.scan().to_arrow().num_rows == n1 + n2
    assert len(renamed.metadata.snapshots) == 2

    catalog.drop_table(new_ident)
    assert not catalog.table_exists(new_ident)
    with pytest.raises(NoSuchTableError):
        catalog.load_table(new_ident)
    with pytest.raises(NoSuchTableError):
        catalog.drop_table(new_ident)
    assert _table_names(catalog, ns) == set()

    # --- clean up the namespace -----------------------------------------------
    catalog.drop_namespace(ns)
    assert (ns,) not in _ns_names(catalog)
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(ns)


def test_concurrent_appends():
    catalog = _catalog()
    sfx = _suffix()
    ns = f"conc_{BACKEND}_{sfx}"
    catalog.create_namespace(ns)
    ident = f"{ns}.counter_{sfx}"
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "writer", LongType(), required=False),
    )
    # Disable PyIceberg's built-in commit retries so that every conflict the
    # server reports (HTTP 409) surfaces here and is retried by the test.
    catalog.create_table(ident, schema=schema, properties={"commit.retry.num-retries": "0"})

    n_threads = 4
    appends_per_thread = 5
    max_attempts = 200
    lock = threading.Lock()
    successes: list[int] = []  # row counts of successful appends
    conflicts = [0]
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def worker(writer: int) -> None:
        try:
            cat = _catalog()  # one client (HTTP session) per thread
            tbl = cat.load_table(ident)
            start.wait(timeout=60)
            for i in range(appends_per_thread):
                n_rows = 10 * (writer + 1) + i
                base = writer * 1_000_000 + i * 1_000
                df = pa.Table.from_pydict(
                    {"id": list(range(base, base + n_rows)), "writer": [writer] * n_rows},
                    schema=pa.schema([pa.field("id", pa.int64()), pa.field("writer", pa.int64())]),
                )
                for attempt in range(max_attempts):
                    try:
                        tbl.append(df)
                    except CommitFailedException:
                        with lock:
                            conflicts[0] += 1
                        time.sleep(0.005 * (attempt % 10))
                        tbl = cat.load_table(ident)
                        continue
                    with lock:
                        successes.append(n_rows)
                    break
                else:
                    raise AssertionError(f"writer {writer}: append {i} never committed")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "writer threads hung"
    if errors:
        raise errors[0]

    assert len(successes) == n_threads * appends_per_thread
    print(f"[{BACKEND}] concurrent appends: {len(successes)} committed, {conflicts[0]} conflicts retried")

    table = catalog.load_table(ident)
    data = table.scan().to_arrow()
    assert data.num_rows == sum(successes)
    assert len(set(data.column("id").to_pylist())) == data.num_rows, "duplicate rows committed"
    assert len(table.metadata.snapshots) == len(successes)

    # Every commit must build on the previous one: a single linear history.
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    chain = []
    snap = table.current_snapshot()
    while snap is not None:
        chain.append(snap)
        snap = by_id.get(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    assert len(chain) == len(successes)
    assert sum(int(s.summary["added-records"]) for s in chain) == sum(successes)
    assert int(table.current_snapshot().summary["total-records"]) == sum(successes)

    catalog.drop_table(ident)
    catalog.drop_namespace(ns)


def test_names_with_url_characters_round_trip():
    """Table and namespace names with '#', '?', '%', spaces and unicode become escaped path
    segments: PyIceberg writes and reads each table's own files, and no two names collide
    ('h#2' once wrote data file, manifest and manifest list to one file '.../h')."""
    catalog = _catalog()
    sfx = _suffix()
    ns = (f"odd ns #?%{sfx}",)
    catalog.create_namespace(ns)
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "name", StringType(), required=False),
    )
    names = ["h#2", "h", "q?x", "q#x", "50%", "a%23b", "a#b", "sp ace", "ünïcødé ☃"]
    locations = set()
    for i, name in enumerate(names):
        table = catalog.create_table(ns + (name,), schema=schema)
        assert table.location() not in locations, f"{name!r} shares {table.location()}"
        locations.add(table.location())
        # Two appends: the second snapshot must read the first one's files back.
        for batch in range(2):
            rows = pa.Table.from_pydict(
                {"id": [i * 100 + batch], "name": [f"{name}/{batch}"]},
                schema=pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())]),
            )
            table.append(rows)
    for i, name in enumerate(names):
        table = catalog.load_table(ns + (name,))
        got = sorted(table.scan().to_arrow().column("name").to_pylist())
        assert got == [f"{name}/0", f"{name}/1"], f"{name!r} read back {got!r}"
        assert len(table.history()) == 2
    assert {t[-1] for t in catalog.list_tables(ns)} == set(names)
    for name in names:
        catalog.purge_table(ns + (name,))
    catalog.drop_namespace(ns)
