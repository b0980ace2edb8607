"""PyIceberg and DuckDB on an S3 warehouse with vended credentials (and PyIceberg with
remote signing).

`tests/run.sh` starts a throwaway S3 with STS (SeaweedFS, tests/lib/s3.sh) and exports
SERAC_TEST_S3_*; each test here creates its own S3 warehouse through the management API
(credential mode `vended`) and gives the clients no S3 keys of their own: everything they
read and write goes through the credentials Serac hands out for the table.

    SERAC_URI=http://127.0.0.1:8181 SERAC_TEST_S3_ENDPOINT=... pytest -q tests/clients/test_s3.py
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest

SERAC_URI = os.environ.get("SERAC_URI")
BACKEND = os.environ.get("SERAC_BACKEND", "unknown")

if not SERAC_URI:
    pytest.skip("SERAC_URI is not set (tests/run.sh starts a server and sets it)", allow_module_level=True)

import pyarrow as pa  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
from pyiceberg.catalog import load_catalog  # noqa: E402
from pyiceberg.expressions import EqualTo  # noqa: E402

import test_duckdb  # noqa: E402  (the pinned DuckDB extensions)


def _s3_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: run the suite with tests/run.sh, which starts a throwaway S3 "
            "with STS (SeaweedFS, tests/lib/s3.sh)"
        )
    return value


def _suffix() -> str:
    return uuid.uuid4().hex[:10]


class S3:
    def __init__(self):
        self.endpoint = _s3_env("SERAC_TEST_S3_ENDPOINT")
        self.bucket = _s3_env("SERAC_TEST_S3_BUCKET")
        self.key = _s3_env("SERAC_TEST_S3_ACCESS_KEY_ID")
        self.secret = _s3_env("SERAC_TEST_S3_SECRET_ACCESS_KEY")
        self.role = _s3_env("SERAC_TEST_S3_ROLE_ARN")

    def fs(self) -> pafs.S3FileSystem:
        """The bucket as the catalog identity sees it (to check what is left after a purge)."""
        scheme, host = self.endpoint.split("://", 1)
        return pafs.S3FileSystem(
            access_key=self.key,
            secret_key=self.secret,
            endpoint_override=host,
            scheme=scheme,
            region="us-east-1",
        )

    def keys_below(self, location: str) -> list[str]:
        path = location.split("://", 1)[1]
        infos = self.fs().get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
        return [i.path for i in infos if i.type == pafs.FileType.File]


@pytest.fixture(scope="module")
def s3():
    return S3()


def _create_warehouse(s3: S3, mode: str) -> str:
    """An S3 warehouse in credential mode `mode`, created through the management API."""
    name = f"s3-{BACKEND}-{mode}-{_suffix()}"
    storage = {
        "type": "s3",
        "endpoint": s3.endpoint,
        "region": "us-east-1",
        "path-style-access": True,
        "access-key-id": s3.key,
        "secret-access-key": s3.secret,
        "credential-mode": mode,
    }
    if mode == "vended":
        storage["sts"] = {"role-arn": s3.role, "session-duration": "1h"}
    created = _post(
        "/management/v1/warehouses",
        {"name": name, "location": f"s3://{s3.bucket}/{name}", "storage": storage},
    )
    assert s3.secret not in json.dumps(created)
    return name


@pytest.fixture(scope="module")
def warehouse(s3):
    """An S3 warehouse with vended credentials."""
    return _create_warehouse(s3, "vended")


def _post(path: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{SERAC_URI.rstrip('/')}{path}",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        pytest.fail(f"POST {path} failed: {e.code} {e.read().decode()}")


def _catalog(warehouse: str):
    # No S3 keys here: every file access uses what Serac vends for the table.
    return load_catalog(f"s3-{warehouse}", type="rest", uri=SERAC_URI, warehouse=warehouse)


def _rows(start: int, count: int) -> pa.Table:
    ids = list(range(start, start + count))
    return pa.Table.from_pydict(
        {"id": ids, "name": [f"name-{i}" for i in ids]},
        schema=pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())]),
    )


def test_pyiceberg_lifecycle_with_vended_credentials(s3, warehouse):
    catalog = _catalog(warehouse)
    ns = f"py_{_suffix()}"
    catalog.create_namespace(ns)
    table = catalog.create_table(f"{ns}.events", schema=_rows(0, 1).schema)
    assert table.location().startswith(f"s3://{s3.bucket}/{warehouse}/")
    # The table's file IO got credentials scoped to it.
    assert table.io.properties.get("s3.session-token"), sorted(table.io.properties)
    assert s3.secret not in [str(v) for v in table.io.properties.values()]

    table.append(_rows(0, 10))
    first = table.current_snapshot().snapshot_id
    table.append(_rows(10, 5))
    assert table.scan().to_arrow().num_rows == 15
    # The data files are in the bucket, below the table.
    keys = s3.keys_below(table.location())
    assert any(k.endswith(".parquet") for k in keys), keys
    assert any(k.endswith(".metadata.json") for k in keys), keys

    # Server-side scan planning reads the manifests from the bucket.
    plan = _post(f"/v1/{warehouse}/namespaces/{ns}/tables/events/plan", {})
    assert plan["status"] == "completed", plan
    paths = [t["data-file"]["file-path"] for t in plan.get("file-scan-tasks", [])]
    assert len(paths) == 2 and all(p.startswith(table.location()) for p in paths), plan

    table.delete(EqualTo("id", 3))
    assert sorted(r["id"] for r in table.scan().to_arrow().to_pylist()) == [
        i for i in range(15) if i != 3
    ]
    table.overwrite(_rows(100, 4))
    reloaded = catalog.load_table(f"{ns}.events")
    assert sorted(r["id"] for r in reloaded.scan().to_arrow().to_pylist()) == [100, 101, 102, 103]
    # Time travel to the first snapshot.
    assert reloaded.scan(snapshot_id=first).to_arrow().num_rows == 10

    location = reloaded.location()
    catalog.purge_table(f"{ns}.events")
    deadline = time.time() + 30
    while s3.keys_below(location) and time.time() < deadline:
        time.sleep(0.2)
    assert s3.keys_below(location) == [], "the purge left objects behind"
    catalog.drop_namespace(ns)


def test_duckdb_reads_with_vended_credentials(s3, warehouse):
    catalog = _catalog(warehouse)
    ns = f"duck_{_suffix()}"
    catalog.create_namespace(ns)
    table = catalog.create_table(f"{ns}.t", schema=_rows(0, 1).schema)
    table.append(_rows(0, 25))
    con = test_duckdb._duckdb()
    try:
        con.execute(
            f"ATTACH '{warehouse}' AS s3lake (TYPE iceberg, ENDPOINT '{SERAC_URI.rstrip('/')}', "
            "AUTHORIZATION_TYPE 'none')"
        )
        count, total = con.execute(f"SELECT count(*), sum(id) FROM s3lake.{ns}.t").fetchone()
        assert (count, total) == (25, sum(range(25)))
        names = con.execute(f"SELECT name FROM s3lake.{ns}.t WHERE id = 7").fetchall()
        assert names == [("name-7",)]
    finally:
        con.close()
    catalog.purge_table(f"{ns}.t")
    catalog.drop_namespace(ns)


def test_duckdb_writes_with_vended_credentials(s3, warehouse):
    """DuckDB creates, inserts, deletes, updates, reads back in time and drops on S3 with
    nothing but the credentials Serac vends for each table; PyIceberg sees the same."""
    catalog = _catalog(warehouse)
    schema = f"duckw_{_suffix()}"
    con = test_duckdb._duckdb()
    try:
        con.execute(
            f"ATTACH '{warehouse}' AS s3w (TYPE iceberg, ENDPOINT '{SERAC_URI.rstrip('/')}', "
            "AUTHORIZATION_TYPE 'none')"
        )
        fq = f's3w."{schema}"'
        con.execute(f"CREATE SCHEMA {fq}")
        con.execute(f"CREATE TABLE {fq}.items (id BIGINT, name VARCHAR)")
        values = ", ".join(f"({i}, 'item-{i}')" for i in range(10))
        assert con.execute(f"INSERT INTO {fq}.items VALUES {values}").fetchone() == (10,)
        table = catalog.load_table(f"{schema}.items")
        location = table.metadata.location
        assert location.startswith(f"s3://{s3.bucket}/{warehouse}/"), location
        first_snapshot = table.current_snapshot().snapshot_id
        assert any(k.endswith(".parquet") for k in s3.keys_below(location)), "no data file on S3"

        # Row-level changes (delete files written with the vended keys).
        assert con.execute(f"DELETE FROM {fq}.items WHERE id < 3").fetchone() == (3,)
        assert con.execute(f"UPDATE {fq}.items SET name = 'renamed' WHERE id = 5").fetchone() == (1,)
        got = dict(con.execute(f"SELECT id, name FROM {fq}.items").fetchall())
        assert sorted(got) == list(range(3, 10)) and got[5] == "renamed"
        table = catalog.load_table(f"{schema}.items")
        assert {r["id"]: r["name"] for r in table.scan().to_arrow().to_pylist()} == got

        # Time travel: the first snapshot still has all ten rows, for DuckDB and PyIceberg.
        old = con.execute(
            f"SELECT count(*) FROM {fq}.items AT (VERSION => {first_snapshot})"
        ).fetchone()
        assert old == (10,)
        assert table.scan(snapshot_id=first_snapshot).to_arrow().num_rows == 10

        # DROP TABLE from DuckDB: a plain drop (DuckDB does not ask for a purge), so the
        # catalog forgets the table and its files stay in the bucket.
        con.execute(f"DROP TABLE {fq}.items")
        assert not catalog.table_exists(f"{schema}.items")
        assert s3.keys_below(location), "a drop without purgeRequested deleted files"
    finally:
        con.close()
    for ident in catalog.list_tables(schema):
        catalog.purge_table(ident)
    catalog.drop_namespace(schema)


def test_pyiceberg_with_remote_signing(s3, monkeypatch):
    """PyIceberg's fsspec file IO sends every S3 request to Serac for signing (the table
    config names the signer and the file IO); it never holds a key. It signs at the legacy
    path `v1/aws/s3/sign` (the table's `s3.signer.endpoint`), where Serac finds the table from
    the key: two tables used in turn in one process both work.

    A workaround for a PyIceberg bug (apache/iceberg-python#3896): PyIceberg installs its
    signer on the S3 file system by unregistering the old handler and registering the new one,
    and fsspec hands the same S3FileSystem to every thread and every table of the process, so
    a request another thread sends between the two calls goes out unsigned; SeaweedFS answers
    403 AccessDenied (about 1 run in 15 of this test with PyIceberg's worker pool). With
    `skip_instance_cache` (what the environment variable FSSPEC_S3_SKIP_INSTANCE_CACHE=true
    sets) every file IO and thread gets a file system of its own: nothing is shared, the
    worker pool keeps its normal size."""
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "s3", {**fsspec.config.conf.get("s3", {}), "skip_instance_cache": True})
    warehouse = _create_warehouse(s3, "remote-signing")
    catalog = _catalog(warehouse)
    ns = f"signed_{_suffix()}"
    catalog.create_namespace(ns)
    table = catalog.create_table(f"{ns}.t", schema=_rows(0, 1).schema)
    assert type(table.io).__name__ == "FsspecFileIO", type(table.io)
    assert not table.io.properties.get("s3.secret-access-key")
    assert table.io.properties.get("s3.signer.endpoint") == "v1/aws/s3/sign", table.io.properties
    table.append(_rows(0, 20))
    first = table.current_snapshot().snapshot_id
    other = catalog.create_table(f"{ns}.other", schema=_rows(0, 1).schema)
    other.append(_rows(100, 3))
    table.append(_rows(20, 5))
    reloaded = catalog.load_table(f"{ns}.t")
    assert reloaded.scan().to_arrow().num_rows == 25
    assert catalog.load_table(f"{ns}.other").scan().to_arrow().num_rows == 3
    assert sorted(r["id"] for r in reloaded.scan(row_filter=EqualTo("id", 7)).to_arrow().to_pylist()) == [7]
    # Row deletes and an overwrite, every file written and read through signed requests.
    reloaded.delete(EqualTo("id", 3))
    assert sorted(r["id"] for r in reloaded.scan().to_arrow().to_pylist()) == [i for i in range(25) if i != 3]
    reloaded.overwrite(_rows(200, 2))
    reloaded = catalog.load_table(f"{ns}.t")
    assert sorted(r["id"] for r in reloaded.scan().to_arrow().to_pylist()) == [200, 201]
    # Time travel to the first append.
    assert reloaded.scan(snapshot_id=first).to_arrow().num_rows == 20
    location = reloaded.location()
    assert any(k.endswith(".parquet") for k in s3.keys_below(location))
    for name in ("t", "other"):
        catalog.purge_table(f"{ns}.{name}")
    deadline = time.time() + 30
    while s3.keys_below(location) and time.time() < deadline:
        time.sleep(0.2)
    assert s3.keys_below(location) == []
    catalog.drop_namespace(ns)
