"""DuckDB's iceberg extension against a live Serac: ATTACH as an Iceberg REST catalog,
list, read what PyIceberg wrote, write what PyIceberg reads.

    SERAC_URI=http://127.0.0.1:8181 pytest -q tests/clients/test_duckdb.py

The iceberg, avro and httpfs extensions come from the PyPI packages
`duckdb-extension-{iceberg,avro,httpfs}` (see requirements.txt), which ship the
extension binary inside the Python package at
`duckdb_extension_<name>/extensions/v<duckdb version>/<name>.duckdb_extension`.
They are LOADed from there by path; automatic install/load is switched off so nothing is
fetched over the network.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import json
import os
import pathlib
import urllib.request
import uuid

import pytest

SERAC_URI = os.environ.get("SERAC_URI")
BACKEND = os.environ.get("SERAC_BACKEND", "unknown")

if not SERAC_URI:
    pytest.skip("SERAC_URI is not set (tests/run.sh starts a server and sets it)", allow_module_level=True)

# With a server to test, a missing client library is a failure, not a skip.
import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
from pyiceberg.catalog import load_catalog  # noqa: E402
from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError  # noqa: E402
from pyiceberg.partitioning import PartitionField, PartitionSpec  # noqa: E402
from pyiceberg.schema import Schema  # noqa: E402
from pyiceberg.transforms import DayTransform, IdentityTransform  # noqa: E402
from pyiceberg.types import (  # noqa: E402
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
)

EXTENSIONS = ("httpfs", "avro", "iceberg")  # load order: iceberg needs the other two
DB = "serac"


# ----------------------------------------------------------------------------- helpers


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


def _catalog():
    return load_catalog("serac", type="rest", uri=SERAC_URI)


def _extension_path(name: str) -> pathlib.Path:
    package = f"duckdb_extension_{name}"
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, (
        f"python package {package} is not installed (pip install -r tests/clients/requirements.txt)"
    )
    root = pathlib.Path(list(spec.submodule_search_locations)[0])
    path = root / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    assert path.is_file(), (
        f"{package} has no build for duckdb {duckdb.__version__}: "
        f"found {sorted(str(p.relative_to(root)) for p in root.glob('extensions/*/*'))}"
    )
    return path


def _warehouse_name() -> str:
    """Serac's default warehouse, as /v1/config names it (the prefix is the warehouse name)."""
    with urllib.request.urlopen(f"{SERAC_URI.rstrip('/')}/v1/config", timeout=10) as resp:
        config = json.load(resp)
    return config.get("overrides", {}).get("prefix") or "default"


def _duckdb() -> duckdb.DuckDBPyConnection:
    """A connection with the pinned iceberg extension and its dependencies loaded."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    )
    for name in EXTENSIONS:
        con.execute(f"LOAD '{_extension_path(name)}'")
    return con


def _connect() -> duckdb.DuckDBPyConnection:
    con = _duckdb()
    con.execute(
        f"ATTACH '{_warehouse_name()}' AS {DB} "
        f"(TYPE iceberg, ENDPOINT '{SERAC_URI.rstrip('/')}', AUTHORIZATION_TYPE 'none')"
    )
    return con


def _q(con, sql: str, params=None) -> pa.Table:
    return con.execute(sql, params or []).to_arrow_table()


def _sorted_rows(table: pa.Table, key: str = "id") -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r[key])


@pytest.fixture
def catalog():
    return _catalog()


@pytest.fixture
def ns(catalog):
    name = f"duck_{BACKEND}_{_suffix()}"
    catalog.create_namespace(name)
    yield name
    try:
        for ident in catalog.list_tables(name):
            try:
                catalog.purge_table(ident)
            except NoSuchTableError:
                pass
        catalog.drop_namespace(name)
    except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's result
        print(f"cleanup of namespace {name} failed: {exc!r}")


@pytest.fixture
def con():
    c = _connect()
    yield c
    c.close()


# ----------------------------------------------------------------------------- tests


def test_extensions_come_from_the_python_packages():
    assert duckdb.__version__.startswith("1.5."), duckdb.__version__
    c = _connect()
    try:
        loaded = {
            name
            for (name,) in c.execute(
                "SELECT extension_name FROM duckdb_extensions() WHERE loaded"
            ).fetchall()
        }
        assert set(EXTENSIONS) <= loaded
        dbs = {name for (name,) in c.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        assert DB in dbs
    finally:
        c.close()


def test_list_schemas_and_tables(catalog, ns, con):
    schema = Schema(NestedField(1, "id", LongType(), required=False))
    catalog.create_table(f"{ns}.first", schema=schema)
    catalog.create_table(f"{ns}.second", schema=schema)

    schemas = {s for (s,) in con.execute(
        "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", [DB]
    ).fetchall()}
    assert ns in schemas

    tables = {t for (t,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?", [DB, ns]
    ).fetchall()}
    assert tables == {"first", "second"}

    all_tables = {(r[1], r[2]) for r in con.execute("SHOW ALL TABLES").fetchall() if r[0] == DB}
    assert {(ns, "first"), (ns, "second")} <= all_tables

    cols = con.execute(f'DESCRIBE {DB}."{ns}".first').fetchall()
    assert [(c[0], c[1]) for c in cols] == [("id", "BIGINT")]


ALL_TYPES = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "category", StringType(), required=False),
    NestedField(3, "ts", TimestampType(), required=False),
    NestedField(4, "tstz", TimestamptzType(), required=False),
    NestedField(5, "day", DateType(), required=False),
    NestedField(6, "amount", DecimalType(10, 2), required=False),
    NestedField(7, "flag", BooleanType(), required=False),
    NestedField(8, "small", IntegerType(), required=False),
    NestedField(9, "score", DoubleType(), required=False),
    NestedField(10, "blob", BinaryType(), required=False),
    NestedField(11, "tags", ListType(12, StringType(), element_required=False), required=False),
    NestedField(
        13,
        "point",
        StructType(
            NestedField(14, "x", LongType(), required=False),
            NestedField(15, "label", StringType(), required=False),
        ),
        required=False,
    ),
    NestedField(16, "attrs", MapType(17, StringType(), 18, LongType(), value_required=False), required=False),
)
BASE_TS = dt.datetime(2024, 5, 1, 8, 0, 0)


def _typed_rows(table, ids) -> pa.Table:
    arrow = table.schema().as_arrow()  # the catalog assigns fresh field ids
    rows = []
    for i in ids:
        rows.append(
            {
                "id": i,
                "category": ["a", "b", "c"][i % 3],
                "ts": BASE_TS + dt.timedelta(hours=7 * i),
                "tstz": dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=13 * i),
                "day": dt.date(2024, 1, 1) + dt.timedelta(days=i),
                "amount": decimal.Decimal(i * 7) / 4 if i % 5 else None,
                "flag": i % 2 == 0,
                "small": i - 10,
                "score": i * 0.25,
                "blob": bytes([i % 256, 0, 255]),
                "tags": [f"t{i}", None] if i % 4 else [],
                "point": {"x": i * 10, "label": f"p{i}"} if i % 6 else None,
                "attrs": [("k", i), ("n", None)] if i % 3 else [],
            }
        )
    return pa.Table.from_pylist(rows, schema=arrow)


def test_read_table_written_by_pyiceberg(catalog, ns, con):
    spec = PartitionSpec(
        PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="category"),
        PartitionField(source_id=3, field_id=1001, transform=DayTransform(), name="ts_day"),
    )
    ident = f"{ns}.typed"
    table = catalog.create_table(ident, schema=ALL_TYPES, partition_spec=spec)
    table.append(_typed_rows(table, range(0, 40)))
    first_snapshot = catalog.load_table(ident).current_snapshot().snapshot_id
    table = catalog.load_table(ident)
    table.append(_typed_rows(table, range(40, 60)))
    table = catalog.load_table(ident)
    table.delete(delete_filter="id >= 10 and id < 15")
    table = catalog.load_table(ident)
    with table.update_schema() as up:
        up.add_column("extra", StringType())
    table = catalog.load_table(ident)

    expected = _sorted_rows(table.scan().to_arrow())
    assert len(expected) == 55
    got = _sorted_rows(_q(con, f'SELECT * FROM {DB}."{ns}".typed'))
    assert got == expected

    # filters (partition pruning in DuckDB) agree with PyIceberg
    only_b = _q(con, f"SELECT id FROM {DB}.\"{ns}\".typed WHERE category = 'b' ORDER BY id")
    assert only_b.column("id").to_pylist() == sorted(
        table.scan(row_filter="category == 'b'").to_arrow().column("id").to_pylist()
    )
    agg = con.execute(f'SELECT count(*), sum(id), count(amount) FROM {DB}."{ns}".typed').fetchone()
    assert agg == (55, sum(r["id"] for r in expected), sum(1 for r in expected if r["amount"] is not None))

    # time travel by snapshot id
    old = _sorted_rows(_q(con, f'SELECT * FROM {DB}."{ns}".typed AT (VERSION => {first_snapshot})'))
    assert old == _sorted_rows(table.scan(snapshot_id=first_snapshot).to_arrow())
    assert len(old) == 40

    snaps = con.execute(f'SELECT snapshot_id FROM iceberg_snapshots({DB}."{ns}".typed)').fetchall()
    assert {s for (s,) in snaps} == {s.snapshot_id for s in table.metadata.snapshots}

    # a commit made elsewhere is visible to the next DuckDB statement
    rows = _typed_rows(table, range(100, 103)).to_pylist()
    table.append(pa.Table.from_pylist([dict(r, extra="x") for r in rows], schema=table.schema().as_arrow()))
    n = con.execute(f'SELECT count(*) FROM {DB}."{ns}".typed').fetchone()[0]
    assert n == 58
    extra = con.execute(f'SELECT extra FROM {DB}."{ns}".typed WHERE id = 101').fetchone()
    assert extra == ("x",)


def test_duckdb_writes_read_by_pyiceberg(catalog, con):
    schema_name = f"duckw_{BACKEND}_{_suffix()}"
    fq = f'{DB}."{schema_name}"'
    con.execute(f"CREATE SCHEMA {fq}")
    try:
        assert catalog.namespace_exists(schema_name)

        con.execute(
            f"CREATE TABLE {fq}.items (id BIGINT, name VARCHAR, price DECIMAL(10, 2), "
            f"added DATE, created_at TIMESTAMP, ok BOOLEAN)"
        )
        assert (schema_name, "items") in {tuple(t) for t in catalog.list_tables(schema_name)}
        rows = [
            (i, f"item-{i}", decimal.Decimal(i) + decimal.Decimal("0.99"), dt.date(2024, 2, 1 + i),
             dt.datetime(2024, 2, 1, 12, i), i % 2 == 0)
            for i in range(10)
        ]
        placeholders = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows))
        inserted = con.execute(
            f"INSERT INTO {fq}.items VALUES {placeholders}", [v for row in rows for v in row]
        ).fetchone()
        assert inserted == (len(rows),)

        table = catalog.load_table(f"{schema_name}.items")
        assert [f.name for f in table.schema().fields] == ["id", "name", "price", "added", "created_at", "ok"]
        assert table.schema().find_field("price").field_type == DecimalType(10, 2)
        got = _sorted_rows(table.scan().to_arrow())
        assert [
            (r["id"], r["name"], r["price"], r["added"], r["created_at"], r["ok"]) for r in got
        ] == rows
        assert len(table.metadata.snapshots) == 1, "one INSERT statement is one snapshot"
        n_snaps = 1

        # row-level DELETE and UPDATE from DuckDB (delete files), read by PyIceberg
        assert con.execute(f"DELETE FROM {fq}.items WHERE id < 3").fetchone() == (3,)
        assert con.execute(f"UPDATE {fq}.items SET name = 'renamed' WHERE id = 5").fetchone() == (1,)
        table = catalog.load_table(f"{schema_name}.items")
        assert len(table.metadata.snapshots) == n_snaps + 2
        got = {r["id"]: r for r in table.scan().to_arrow().to_pylist()}
        assert sorted(got) == list(range(3, 10))
        assert got[5]["name"] == "renamed"
        assert got[6]["name"] == "item-6"

        # DuckDB appends to a table PyIceberg created (partitioned), PyIceberg reads it
        spec = PartitionSpec(PartitionField(2, 1000, IdentityTransform(), "kind"))
        py_schema = Schema(
            NestedField(1, "id", LongType(), required=False),
            NestedField(2, "kind", StringType(), required=False),
        )
        py_table = catalog.create_table(f"{schema_name}.mixed", schema=py_schema, partition_spec=spec)
        py_table.append(pa.Table.from_pydict({"id": [1, 2], "kind": ["x", "y"]}, schema=py_schema.as_arrow()))
        con.execute(f"INSERT INTO {fq}.mixed VALUES (3, 'x'), (4, 'z')")
        mixed = catalog.load_table(f"{schema_name}.mixed")
        assert _sorted_rows(mixed.scan().to_arrow()) == [
            {"id": 1, "kind": "x"}, {"id": 2, "kind": "y"}, {"id": 3, "kind": "x"}, {"id": 4, "kind": "z"}
        ]
        assert sorted(mixed.scan(row_filter="kind == 'x'").to_arrow().column("id").to_pylist()) == [1, 3]

        # DROP TABLE from DuckDB removes it from the catalog
        con.execute(f"DROP TABLE {fq}.items")
        assert not catalog.table_exists(f"{schema_name}.items")
        with pytest.raises(NoSuchTableError):
            catalog.load_table(f"{schema_name}.items")
    finally:
        for ident in catalog.list_tables(schema_name):
            catalog.purge_table(ident)
        catalog.drop_namespace(schema_name)


def test_duckdb_create_table_as_select(catalog, con):
    """CTAS with DuckDB's defaults: a staged create (stage-create=true), data and manifests
    written under the location the server handed out, then one commit with assert-create."""
    schema_name = f"duckc_{BACKEND}_{_suffix()}"
    fq = f'{DB}."{schema_name}"'
    con.execute(f"CREATE SCHEMA {fq}")
    try:
        created = con.execute(
            f"CREATE TABLE {fq}.ctas AS SELECT range AS id, 'v' || range AS label FROM range(25)"
        ).fetchone()
        assert created == (25,)
        table = catalog.load_table(f"{schema_name}.ctas")
        assert len(table.metadata.snapshots) == 1
        got = _sorted_rows(table.scan().to_arrow())
        assert got == [{"id": i, "label": f"v{i}"} for i in range(25)]
        assert con.execute(f"SELECT count(*), sum(id) FROM {fq}.ctas").fetchone() == (25, sum(range(25)))
    finally:
        for ident in catalog.list_tables(schema_name):
            catalog.purge_table(ident)
        catalog.drop_namespace(schema_name)


def test_drop_schema_from_duckdb(catalog, con):
    schema_name = f"duckd_{BACKEND}_{_suffix()}"
    con.execute(f'CREATE SCHEMA {DB}."{schema_name}"')
    assert catalog.namespace_exists(schema_name)
    con.execute(f'DROP SCHEMA {DB}."{schema_name}"')
    assert not catalog.namespace_exists(schema_name)
    with pytest.raises(NoSuchNamespaceError):
        catalog.load_namespace_properties(schema_name)
