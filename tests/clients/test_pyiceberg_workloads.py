"""PyIceberg workloads against a live Serac: the write paths and table maintenance a real
user exercises, beyond the basic lifecycle in test_pyiceberg.py.

    SERAC_URI=http://127.0.0.1:8181 pytest -q tests/clients/test_pyiceberg_workloads.py

Every test works in its own namespace with a random suffix, so reruns against the same
server never clash. Checks on files (purge, drop without purge) run only when the table
lives in a `file://` warehouse this process can see.
"""

from __future__ import annotations

import decimal
import json
import os
import threading
import time
import urllib.request
import uuid
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NamespaceNotEmptyError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.expressions import EqualTo, GreaterThanOrEqual, LessThan
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import NullOrder, SortDirection, SortField, SortOrder
from pyiceberg.transforms import BucketTransform, IdentityTransform
from pyiceberg.types import (
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
)

SERAC_URI = os.environ.get("SERAC_URI")
BACKEND = os.environ.get("SERAC_BACKEND", "unknown")

pytestmark = pytest.mark.skipif(
    not SERAC_URI, reason="SERAC_URI is not set (tests/run.sh starts a server and sets it)"
)


# ----------------------------------------------------------------------------- helpers


def _catalog():
    return load_catalog("serac", type="rest", uri=SERAC_URI)


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def catalog():
    return _catalog()


@pytest.fixture
def ns(catalog):
    """A fresh namespace; whatever is left in it is purged afterwards."""
    name = f"wl_{BACKEND}_{_suffix()}"
    catalog.create_namespace(name, properties={"owner": "serac-workloads"})
    yield name
    try:
        for ident in catalog.list_tables(name):
            try:
                catalog.purge_table(ident)
            except NoSuchTableError:
                pass
        catalog.drop_namespace(name)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own result
        print(f"cleanup of namespace {name} failed: {exc!r}")


KV_SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "category", StringType(), required=False),
    NestedField(3, "value", DoubleType(), required=False),
)
KV_ARROW = pa.schema(
    [pa.field("id", pa.int64()), pa.field("category", pa.string()), pa.field("value", pa.float64())]
)
CATS = ["a", "b", "c"]


def _kv(ids, value_offset: float = 0.0) -> pa.Table:
    ids = list(ids)
    return pa.Table.from_pydict(
        {
            "id": ids,
            "category": [CATS[i % len(CATS)] for i in ids],
            "value": [i + value_offset for i in ids],
        },
        schema=KV_ARROW,
    )


def _rows(table, **scan_kwargs) -> list[dict]:
    return sorted(table.scan(**scan_kwargs).to_arrow().to_pylist(), key=lambda r: r["id"])


def _ids(table, **scan_kwargs) -> list[int]:
    return sorted(table.scan(**scan_kwargs).to_arrow().column("id").to_pylist())


def _snapshots_in_order(table):
    return sorted(table.metadata.snapshots, key=lambda s: s.sequence_number)


def _local_path(location: str) -> str | None:
    """The local path of a `file://` location, when this process can see it."""
    parsed = urlparse(location)
    if parsed.scheme not in ("file", ""):
        return None
    path = parsed.path
    probe = path
    while probe and not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
    return path if probe and probe != "/" else None


def _files_under(path: str) -> list[str]:
    out = []
    for root, _dirs, files in os.walk(path):
        out.extend(os.path.join(root, f) for f in files)
    return out


# ------------------------------------------------------------------------- namespaces


def test_namespaces_and_properties(catalog):
    sfx = _suffix()
    parent = f"wlns_{BACKEND}_{sfx}"
    props = {"owner": "alice", "comment": "workloads", "keep": "yes"}
    catalog.create_namespace(parent, properties=props)
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace(parent)
    assert catalog.namespace_exists(parent)
    assert not catalog.namespace_exists(f"missing_{sfx}")
    assert (parent,) in {tuple(n) for n in catalog.list_namespaces()}

    loaded = catalog.load_namespace_properties(parent)
    for k, v in props.items():
        assert loaded.get(k) == v

    summary = catalog.update_namespace_properties(
        parent, removals={"comment", "never-set"}, updates={"owner": "bob", "new": "1"}
    )
    assert set(summary.removed) == {"comment"}
    assert set(summary.updated) == {"owner", "new"}
    assert set(summary.missing) == {"never-set"}
    loaded = catalog.load_namespace_properties(parent)
    assert loaded.get("owner") == "bob" and loaded.get("new") == "1" and loaded.get("keep") == "yes"
    assert "comment" not in loaded

    # nested namespaces: listing a parent returns its direct children
    child = (parent, "child")
    catalog.create_namespace(child, properties={"level": "2"})
    assert catalog.namespace_exists(child)
    assert catalog.load_namespace_properties(child).get("level") == "2"
    assert child in {tuple(n) for n in catalog.list_namespaces(parent)}
    with pytest.raises(NoSuchNamespaceError):
        catalog.list_namespaces(f"missing_{sfx}")

    # a namespace holding a table cannot be dropped
    ident = (parent, "child", "t")
    catalog.create_table(ident, schema=KV_SCHEMA)
    with pytest.raises(NamespaceNotEmptyError):
        catalog.drop_namespace(child)
    catalog.purge_table(ident)
    catalog.drop_namespace(child)
    assert not catalog.namespace_exists(child)
    catalog.drop_namespace(parent)
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(parent)
    with pytest.raises(NoSuchNamespaceError):
        catalog.drop_namespace(parent)


# ----------------------------------------------------------------------------- tables


def test_table_create_load_list_rename_drop_purge(catalog, ns):
    sfx = _suffix()
    other_ns = f"{ns}_dst"
    catalog.create_namespace(other_ns)
    try:
        a = f"{ns}.a_{sfx}"
        b = f"{ns}.b_{sfx}"
        catalog.create_table(a, schema=KV_SCHEMA, properties={"p": "1"})
        catalog.create_table(b, schema=KV_SCHEMA)
        assert {tuple(t) for t in catalog.list_tables(ns)} == {(ns, f"a_{sfx}"), (ns, f"b_{sfx}")}
        assert catalog.table_exists(a)
        with pytest.raises(NoSuchTableError):
            catalog.load_table(f"{ns}.missing_{sfx}")
        with pytest.raises(NoSuchNamespaceError):
            catalog.list_tables(f"missing_{sfx}")
        with pytest.raises(NoSuchNamespaceError):
            catalog.create_table(f"missing_{sfx}.t", schema=KV_SCHEMA)

        t = catalog.load_table(a)
        assert t.metadata.properties.get("p") == "1"
        t.append(_kv(range(10)))

        # rename across namespaces keeps identity and data
        moved = f"{other_ns}.moved_{sfx}"
        catalog.rename_table(a, moved)
        assert not catalog.table_exists(a)
        m = catalog.load_table(moved)
        assert m.metadata.table_uuid == t.metadata.table_uuid
        assert _ids(m) == list(range(10))
        with pytest.raises(TableAlreadyExistsError):
            catalog.rename_table(b, moved)
        with pytest.raises(NoSuchTableError):
            catalog.rename_table(a, f"{ns}.nowhere_{sfx}")

        # drop keeps the files; purge removes them
        b_tbl = catalog.load_table(b)
        b_tbl.append(_kv(range(5)))
        b_tbl = catalog.load_table(b)
        b_meta = _local_path(b_tbl.metadata_location)
        catalog.drop_table(b)
        assert not catalog.table_exists(b)
        if b_meta is not None:
            assert os.path.exists(b_meta), "drop without purge must keep the metadata file"

        m = catalog.load_table(moved)
        root = _local_path(m.metadata.location)
        files_before = _files_under(root) if root else []
        catalog.purge_table(moved)
        assert not catalog.table_exists(moved)
        with pytest.raises(NoSuchTableError):
            catalog.purge_table(moved)
        if root is not None:
            assert files_before, "the table had files before the purge"
            # The drop answers at once; the purge runs in the background (a durable task).
            deadline = time.monotonic() + 30
            left = files_before
            while left and time.monotonic() < deadline:
                left = [f for f in files_before if os.path.exists(f)]
                time.sleep(0.05)
            assert left == [], f"purge left files behind: {left[:5]}"
    finally:
        for ident in catalog.list_tables(other_ns):
            catalog.purge_table(ident)
        catalog.drop_namespace(other_ns)


# ------------------------------------------------------------------------ data writes


def test_append_overwrite_delete(catalog, ns):
    ident = f"{ns}.writes"
    table = catalog.create_table(ident, schema=KV_SCHEMA)
    table.append(_kv(range(0, 30)))
    table.append(_kv(range(30, 60)))
    table = catalog.load_table(ident)
    assert _ids(table) == list(range(60))

    # delete with a row filter
    table.delete(delete_filter=LessThan("id", 10))
    table = catalog.load_table(ident)
    assert _ids(table) == list(range(10, 60))
    table.delete(delete_filter="category == 'a'")
    table = catalog.load_table(ident)
    expected = [i for i in range(10, 60) if CATS[i % 3] != "a"]
    assert _ids(table) == expected

    # overwrite with a filter replaces only the matching rows
    table.overwrite(_kv(range(100, 104), value_offset=0.5), overwrite_filter=GreaterThanOrEqual("id", 50))
    table = catalog.load_table(ident)
    expected = [i for i in expected if i < 50] + list(range(100, 104))
    assert _ids(table) == expected
    by_id = {r["id"]: r for r in _rows(table)}
    assert by_id[101]["value"] == 101.5

    # overwrite without a filter replaces everything
    table.overwrite(_kv(range(500, 505)))
    table = catalog.load_table(ident)
    assert _ids(table) == list(range(500, 505))
    assert table.current_snapshot().summary["total-records"] == "5"

    ops = [s.summary.operation.value for s in _snapshots_in_order(table)]
    assert ops[:2] == ["append", "append"]
    assert "delete" in ops and "overwrite" in ops
    # a linear history: every snapshot's parent is the one before it
    snaps = _snapshots_in_order(table)
    for prev, cur in zip(snaps, snaps[1:]):
        assert cur.parent_snapshot_id == prev.snapshot_id


def test_upsert(catalog, ns):
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "qty", LongType(), required=False),
        identifier_field_ids=[1],
    )
    arrow = pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string()), pa.field("qty", pa.int64())]
    )
    ident = f"{ns}.upserts"
    table = catalog.create_table(ident, schema=schema)
    assert catalog.load_table(ident).schema().identifier_field_ids == [1]

    first = pa.Table.from_pylist([{"id": i, "name": f"n{i}", "qty": i} for i in range(5)], schema=arrow)
    res = table.upsert(first)
    assert (res.rows_updated, res.rows_inserted) == (0, 5)

    # ids 3,4 change, 2 is unchanged, 5,6 are new
    second = pa.Table.from_pylist(
        [{"id": 2, "name": "n2", "qty": 2}]
        + [{"id": i, "name": f"changed{i}", "qty": 100 + i} for i in (3, 4)]
        + [{"id": i, "name": f"n{i}", "qty": i} for i in (5, 6)],
        schema=arrow,
    )
    table = catalog.load_table(ident)
    res = table.upsert(second)
    assert (res.rows_updated, res.rows_inserted) == (2, 2)

    table = catalog.load_table(ident)
    rows = {r["id"]: r for r in _rows(table)}
    assert sorted(rows) == list(range(7))
    assert rows[3] == {"id": 3, "name": "changed3", "qty": 103}
    assert rows[2] == {"id": 2, "name": "n2", "qty": 2}
    assert rows[6]["name"] == "n6"


# ------------------------------------------------------------------- table evolution


def test_schema_evolution(catalog, ns):
    schema = Schema(
        NestedField(1, "id", IntegerType(), required=False),
        NestedField(2, "price", FloatType(), required=False),
        NestedField(3, "amount", DecimalType(9, 2), required=False),
        NestedField(4, "legacy", StringType(), required=False),
        NestedField(5, "label", StringType(), required=False),
    )
    ident = f"{ns}.evolve"
    table = catalog.create_table(ident, schema=schema)
    v1 = pa.Table.from_pydict(
        {
            "id": pa.array([1, 2], pa.int32()),
            "price": pa.array([1.5, 2.5], pa.float32()),
            "amount": pa.array([decimal.Decimal("1.10"), decimal.Decimal("2.20")], pa.decimal128(9, 2)),
            "legacy": ["x", "y"],
            "label": ["one", "two"],
        }
    )
    table.append(v1)
    table = catalog.load_table(ident)
    snap_v1 = table.current_snapshot().snapshot_id

    with table.update_schema() as up:
        up.update_column("id", field_type=LongType())  # int -> long
        up.update_column("price", field_type=DoubleType())  # float -> double
        up.update_column("amount", field_type=DecimalType(18, 2))  # widen precision
        up.rename_column("label", "title")
        up.delete_column("legacy")
        up.add_column("note", StringType(), doc="added later")

    table = catalog.load_table(ident)
    s = table.schema()
    assert [f.name for f in s.fields] == ["id", "price", "amount", "title", "note"]
    assert s.find_field("id").field_type == LongType()
    assert s.find_field("price").field_type == DoubleType()
    assert s.find_field("amount").field_type == DecimalType(18, 2)
    assert s.find_field("title").field_id == 5, "rename keeps the field id"
    assert s.find_field("note").doc == "added later"
    assert len(table.schemas()) == 2
    assert table.metadata.current_schema_id == s.schema_id

    table.append(
        pa.Table.from_pydict(
            {
                "id": pa.array([3_000_000_000], pa.int64()),
                "price": pa.array([3.25], pa.float64()),
                "amount": pa.array([decimal.Decimal("1234567890.12")], pa.decimal128(18, 2)),
                "title": ["three"],
                "note": ["new"],
            }
        )
    )
    table = catalog.load_table(ident)
    rows = {r["id"]: r for r in _rows(table)}
    assert sorted(rows) == [1, 2, 3_000_000_000]
    assert rows[1]["title"] == "one" and rows[1]["note"] is None
    assert rows[2]["price"] == 2.5
    assert rows[3_000_000_000]["amount"] == decimal.Decimal("1234567890.12")

    # the old snapshot still reads with its own schema
    old = table.scan(snapshot_id=snap_v1).to_arrow()
    assert old.column_names == ["id", "price", "amount", "legacy", "label"]
    assert sorted(old.column("legacy").to_pylist()) == ["x", "y"]

    # an incompatible change is refused by the client before it reaches the server;
    # a stale schema update is refused by the server
    stale = catalog.load_table(ident)
    with table.update_schema() as up:
        up.add_column("extra", StringType())
    with pytest.raises(CommitFailedException):
        with stale.update_schema() as up:
            up.add_column("extra2", StringType())
    table = catalog.load_table(ident)
    assert "extra" in [f.name for f in table.schema().fields]
    assert "extra2" not in [f.name for f in table.schema().fields]


def test_partition_evolution(catalog, ns):
    ident = f"{ns}.parts"
    table = catalog.create_table(ident, schema=KV_SCHEMA)
    assert table.spec().is_unpartitioned()
    table.append(_kv(range(0, 30)))

    table = catalog.load_table(ident)
    with table.update_spec() as spec:
        spec.add_identity("category")
        spec.add_field("id", BucketTransform(4), "id_bucket")
    table = catalog.load_table(ident)
    assert table.spec().spec_id == 1
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("category", "identity"),
        ("id_bucket", "bucket[4]"),
    ]
    assert len(table.specs()) == 2
    table.append(_kv(range(30, 60)))

    table = catalog.load_table(ident)
    assert _ids(table) == list(range(60))
    only_b = table.scan(row_filter=EqualTo("category", "b")).to_arrow()
    assert sorted(only_b.column("id").to_pylist()) == [i for i in range(60) if i % 3 == 1]
    data_files = list(table.scan().plan_files())
    assert {f.file.spec_id for f in data_files} == {0, 1}

    # drop a partition field: a third spec, older data still readable
    with table.update_spec() as spec:
        spec.remove_field("id_bucket")
    table = catalog.load_table(ident)
    assert len(table.specs()) == 3
    assert [f.name for f in table.spec().fields] == ["category"]
    table.append(_kv(range(60, 66)))
    table = catalog.load_table(ident)
    assert _ids(table) == list(range(66))
    table.delete(delete_filter="category == 'c'")
    table = catalog.load_table(ident)
    assert _ids(table) == [i for i in range(66) if i % 3 != 2]


def test_sort_orders(catalog, ns):
    order = SortOrder(
        SortField(source_id=3, transform=IdentityTransform(), direction=SortDirection.DESC, null_order=NullOrder.NULLS_LAST),
        SortField(source_id=1, transform=IdentityTransform()),
    )
    ident = f"{ns}.sorted"
    table = catalog.create_table(ident, schema=KV_SCHEMA, sort_order=order)
    table = catalog.load_table(ident)
    so = table.sort_order()
    assert so.order_id == 1
    assert [(f.source_id, f.direction, f.null_order) for f in so.fields] == [
        (3, SortDirection.DESC, NullOrder.NULLS_LAST),
        (1, SortDirection.ASC, NullOrder.NULLS_FIRST),
    ]

    # replace the sort order
    with table.update_sort_order() as up:
        up.asc("category", IdentityTransform())
    table = catalog.load_table(ident)
    assert table.sort_order().order_id == 2
    assert [f.source_id for f in table.sort_order().fields] == [2]
    # created with an order, the table has only that order (id 1); the new one is id 2
    assert sorted(table.sort_orders()) == [1, 2]
    assert table.metadata.default_sort_order_id == 2

    # going back to an existing order reuses its id
    with table.update_sort_order() as up:
        up.desc("value", IdentityTransform(), NullOrder.NULLS_LAST)
        up.asc("id", IdentityTransform(), NullOrder.NULLS_FIRST)
    table = catalog.load_table(ident)
    assert table.metadata.default_sort_order_id == 1
    assert sorted(table.sort_orders()) == [1, 2]

    table.append(_kv(range(5)))
    assert _ids(catalog.load_table(ident)) == list(range(5))


# ------------------------------------------------------------- snapshots and history


def test_snapshot_history_and_time_travel(catalog, ns):
    ident = f"{ns}.history"
    table = catalog.create_table(ident, schema=KV_SCHEMA)
    expected_after: list[list[int]] = []
    table.append(_kv(range(0, 10)))
    expected_after.append(list(range(10)))
    table.append(_kv(range(10, 20)))
    expected_after.append(list(range(20)))
    table.delete(delete_filter=LessThan("id", 5))
    expected_after.append(list(range(5, 20)))
    # a full overwrite is two snapshots in PyIceberg: delete everything, then append
    table.overwrite(_kv(range(100, 103)))
    expected_after.append([])
    expected_after.append(list(range(100, 103)))

    table = catalog.load_table(ident)
    snaps = _snapshots_in_order(table)
    assert len(snaps) == 5
    assert snaps[-1].snapshot_id == table.current_snapshot().snapshot_id

    # the overwrite's delete snapshot was never current (same commit as its append), so the
    # snapshot log skips it, as Java's TableMetadata does for intermediate snapshots
    history = table.history()
    assert [h.snapshot_id for h in history] == [s.snapshot_id for s in snaps[:3] + snaps[4:]]
    assert all(a.timestamp_ms <= b.timestamp_ms for a, b in zip(history, history[1:]))

    inspected = table.inspect.snapshots()
    assert inspected.num_rows == 5
    by_id = {r["snapshot_id"]: r for r in inspected.to_pylist()}
    assert set(by_id) == {s.snapshot_id for s in snaps}
    assert by_id[snaps[0].snapshot_id]["parent_id"] is None
    assert by_id[snaps[1].snapshot_id]["operation"] == "append"
    # deleting part of a file rewrites it: PyIceberg records that as an overwrite
    assert by_id[snaps[2].snapshot_id]["operation"] in ("delete", "overwrite")
    assert by_id[snaps[3].snapshot_id]["operation"] == "delete"

    for snap, ids in zip(snaps, expected_after):
        assert _ids(table, snapshot_id=snap.snapshot_id) == ids, f"time travel to {snap.snapshot_id}"

    # as-of-timestamp lookups resolve through the snapshot log
    assert table.snapshot_as_of_timestamp(snaps[1].timestamp_ms).snapshot_id in {
        snaps[1].snapshot_id,
        snaps[2].snapshot_id,
        snaps[3].snapshot_id,
    }

    # tags and branches
    with table.manage_snapshots() as ms:
        ms.create_tag(snaps[1].snapshot_id, "v1")
        ms.create_branch(snaps[0].snapshot_id, "dev")
    table = catalog.load_table(ident)
    assert table.snapshot_by_name("v1").snapshot_id == snaps[1].snapshot_id
    assert table.snapshot_by_name("dev").snapshot_id == snaps[0].snapshot_id
    assert set(table.refs()) == {"main", "v1", "dev"}
    assert _ids(table, snapshot_id=table.snapshot_by_name("v1").snapshot_id) == expected_after[1]

    # rollback moves main back without losing history
    with table.manage_snapshots() as ms:
        ms.rollback_to_snapshot(snaps[1].snapshot_id)
    table = catalog.load_table(ident)
    assert table.current_snapshot().snapshot_id == snaps[1].snapshot_id
    assert _ids(table) == expected_after[1]
    assert len(table.metadata.snapshots) == 5
    assert table.history()[-1].snapshot_id == snaps[1].snapshot_id

    # expiring a snapshot nothing references removes it from the metadata
    with table.manage_snapshots() as ms:
        ms.remove_branch("dev")
    table = catalog.load_table(ident)
    table.maintenance.expire_snapshots().by_id(snaps[0].snapshot_id).commit()
    table = catalog.load_table(ident)
    assert snaps[0].snapshot_id not in {s.snapshot_id for s in table.metadata.snapshots}
    assert _ids(table) == expected_after[1]


def test_register_table_after_drop(catalog, ns):
    ident = f"{ns}.orig"
    table = catalog.create_table(ident, schema=KV_SCHEMA, properties={"k": "v"})
    table.append(_kv(range(7)))
    table = catalog.load_table(ident)
    metadata_location = table.metadata_location
    uuid_before = table.metadata.table_uuid
    snapshot_before = table.current_snapshot().snapshot_id

    catalog.drop_table(ident)  # no purge: the files stay
    assert not catalog.table_exists(ident)

    registered = catalog.register_table(ident, metadata_location)
    assert registered.metadata_location == metadata_location
    assert registered.metadata.table_uuid == uuid_before
    assert registered.current_snapshot().snapshot_id == snapshot_before
    assert registered.metadata.properties.get("k") == "v"
    assert _ids(catalog.load_table(ident)) == list(range(7))

    with pytest.raises(TableAlreadyExistsError):
        catalog.register_table(ident, metadata_location)
    # PyIceberg maps only 409 for register; the server must answer 404 NoSuchNamespaceException
    with pytest.raises(Exception, match="NoSuchNamespaceException"):
        catalog.register_table(f"missing_{_suffix()}.t", metadata_location)

    # the registered table takes new commits on top of the registered metadata
    registered.append(_kv(range(7, 10)))
    table = catalog.load_table(ident)
    assert _ids(table) == list(range(10))
    assert table.current_snapshot().parent_snapshot_id == snapshot_before
    assert table.metadata_location != metadata_location


# ---------------------------------------------------------------------- transactions


def _metadata_version(table) -> tuple[str, int, int]:
    return table.metadata_location, len(table.metadata.metadata_log), len(table.metadata.snapshots)


def test_multi_step_transaction_is_one_commit(catalog, ns):
    ident = f"{ns}.tx"
    table = catalog.create_table(ident, schema=KV_SCHEMA)
    table.append(_kv(range(10)))
    table = catalog.load_table(ident)
    loc0, log0, snaps0 = _metadata_version(table)

    note_arrow = KV_ARROW.append(pa.field("note", pa.string()))
    with table.transaction() as tx:
        tx.set_properties({"owner": "tx-test", "stage": "1"})
        with tx.update_schema() as up:
            up.add_column("note", StringType())
        with tx.update_spec() as spec:
            spec.add_identity("category")
        tx.append(
            pa.Table.from_pydict(
                {"id": [10, 11], "category": ["a", "b"], "value": [1.0, 2.0], "note": ["x", "y"]},
                schema=note_arrow,
            )
        )

    table = catalog.load_table(ident)
    loc1, log1, snaps1 = _metadata_version(table)
    assert loc1 != loc0
    assert log1 == log0 + 1, "one transaction must write exactly one new metadata version"
    assert table.metadata.metadata_log[-1].metadata_file == loc0
    assert snaps1 == snaps0 + 1, "the transaction's one append is one snapshot"
    assert table.metadata.properties.get("owner") == "tx-test"
    assert "note" in [f.name for f in table.schema().fields]
    assert [f.name for f in table.spec().fields] == ["category"]
    assert _ids(table) == list(range(12))

    # delete + append in one transaction: still one metadata version
    with table.transaction() as tx:
        tx.delete(delete_filter=LessThan("id", 5))
        tx.append(
            pa.Table.from_pydict(
                {"id": [20], "category": ["c"], "value": [3.0], "note": [None]}, schema=note_arrow
            )
        )
        tx.remove_properties("stage")
    table = catalog.load_table(ident)
    loc2, log2, _ = _metadata_version(table)
    assert log2 == log1 + 1
    assert table.metadata.metadata_log[-1].metadata_file == loc1
    assert _ids(table) == list(range(5, 12)) + [20]
    assert "stage" not in table.metadata.properties

    # a transaction that fails before commit changes nothing
    with pytest.raises(RuntimeError):
        with table.transaction() as tx:
            tx.set_properties({"should-not": "exist"})
            tx.append(
                pa.Table.from_pydict(
                    {"id": [99], "category": ["a"], "value": [0.0], "note": ["no"]}, schema=note_arrow
                )
            )
            raise RuntimeError("abort")
    table = catalog.load_table(ident)
    assert _metadata_version(table)[0] == loc2
    assert "should-not" not in table.metadata.properties
    assert 99 not in _ids(table)

    # a transaction built on a stale schema is rejected whole
    stale = table
    with catalog.load_table(ident).update_schema() as up:
        up.add_column("concurrent", StringType())
    with pytest.raises(CommitFailedException):
        with stale.transaction() as tx:
            tx.set_properties({"stale": "1"})
            with tx.update_schema() as up:
                up.add_column("late", StringType())
    table = catalog.load_table(ident)
    assert "stale" not in table.metadata.properties
    assert "late" not in [f.name for f in table.schema().fields]


def test_create_table_transaction(catalog, ns):
    """Staged create: the table appears only when the transaction commits, with its data."""
    ident = f"{ns}.staged"
    with catalog.create_table_transaction(ident, schema=KV_SCHEMA, properties={"staged": "yes"}) as tx:
        assert not catalog.table_exists(ident), "a staged table is invisible before commit"
        tx.append(_kv(range(4)))
    table = catalog.load_table(ident)
    assert table.metadata.properties.get("staged") == "yes"
    assert _ids(table) == list(range(4))
    assert len(table.metadata.snapshots) == 1

    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table_transaction(ident, schema=KV_SCHEMA)


# ----------------------------------------------------------------------------- views


def test_views(catalog, ns):
    """Views through PyIceberg: create, load, list, exists, register, drop; a view and a
    table may not share a name."""
    from pyiceberg.view.metadata import SQLViewRepresentation, ViewVersion

    schema = Schema(NestedField(1, "id", LongType(), required=False))
    view_ident = f"{ns}.v_{_suffix()}"
    version = ViewVersion(
        version_id=1,
        schema_id=0,
        summary={"engine-name": "pyiceberg"},
        representations=[SQLViewRepresentation(type="sql", sql="SELECT 1 AS id", dialect="spark")],
        default_namespace=(ns,),
    )
    view = catalog.create_view(view_ident, schema=schema, view_version=version, properties={"owner": "tests"})
    assert view.metadata.properties["owner"] == "tests"
    assert catalog.view_exists(view_ident)
    assert (ns, view_ident.split(".")[1]) in catalog.list_views(ns)
    loaded = catalog.load_view(view_ident)
    current = [v for v in loaded.metadata.versions if v.version_id == loaded.metadata.current_version_id][0]
    assert current.representations[0].root.sql == "SELECT 1 AS id"

    # One name space for tables and views.
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table(view_ident, schema=schema)

    # Drop, then register it back from its last metadata file.
    view_url = f"{SERAC_URI.rstrip('/')}/v1/namespaces/{ns}/views/{view_ident.split('.')[1]}"
    with urllib.request.urlopen(view_url, timeout=10) as resp:
        location = json.load(resp)["metadata-location"]
    assert catalog.drop_view(view_ident) is None
    assert not catalog.view_exists(view_ident)
    registered = catalog.register_view(view_ident, location)
    assert registered.metadata.properties["owner"] == "tests"
    catalog.drop_view(view_ident)


# ------------------------------------------------------------------------ concurrency


def test_eight_concurrent_writers(catalog, ns):
    ident = f"{ns}.counter"
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "writer", LongType(), required=False),
    )
    # surface every 409 to the loop below instead of PyIceberg's internal retry
    catalog.create_table(ident, schema=schema, properties={"commit.retry.num-retries": "0"})
    arrow = pa.schema([pa.field("id", pa.int64()), pa.field("writer", pa.int64())])

    n_threads = 8
    appends_per_thread = 3
    max_attempts = 100
    lock = threading.Lock()
    committed: list[tuple[int, int]] = []  # (writer, rows)
    conflicts = [0]
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def worker(writer: int) -> None:
        try:
            cat = _catalog()  # own catalog and HTTP session per writer
            tbl = cat.load_table(ident)
            start.wait(timeout=120)
            for i in range(appends_per_thread):
                n_rows = 5 + writer + i
                base = writer * 1_000_000 + i * 1_000
                df = pa.Table.from_pydict(
                    {"id": list(range(base, base + n_rows)), "writer": [writer] * n_rows}, schema=arrow
                )
                for attempt in range(max_attempts):
                    try:
                        tbl.append(df)
                    except CommitFailedException:
                        with lock:
                            conflicts[0] += 1
                        time.sleep(0.01 * (attempt % 8))
                        tbl = cat.load_table(ident)
                        continue
                    with lock:
                        committed.append((writer, n_rows))
                    break
                else:
                    raise AssertionError(f"writer {writer}: append {i} never committed")
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "writer threads hung"
    if errors:
        raise errors[0]
    print(f"[{BACKEND}] 8 writers: {len(committed)} appends committed, {conflicts[0]} conflicts retried")

    assert len(committed) == n_threads * appends_per_thread
    table = catalog.load_table(ident)
    data = table.scan().to_arrow()
    total = sum(n for _, n in committed)
    assert data.num_rows == total
    ids = data.column("id").to_pylist()
    assert len(set(ids)) == len(ids), "duplicate rows committed"
    for w in range(n_threads):
        expected = sum(5 + w + i for i in range(appends_per_thread))
        got = pc.sum(pc.equal(data.column("writer"), w)).as_py()
        assert got == expected, f"writer {w}: {got} rows, expected {expected}"
    assert len(table.metadata.snapshots) == len(committed)
    assert int(table.current_snapshot().summary["total-records"]) == total
    # one linear chain of snapshots
    by_id = {s.snapshot_id: s for s in table.metadata.snapshots}
    chain, snap = 0, table.current_snapshot()
    while snap is not None:
        chain += 1
        snap = by_id.get(snap.parent_snapshot_id) if snap.parent_snapshot_id is not None else None
    assert chain == len(committed)
