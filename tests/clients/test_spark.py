"""End-to-end tests of Serac with Apache Spark 3.5 + Iceberg 1.10 (REST catalog).

Run against a live server:

    SERAC_URI=http://127.0.0.1:8181 pytest -q tests/clients/test_spark.py

`tests/clients/spark_setup.sh` (run by the module fixture below; cached under
$HOME/.cache/serac/spark) provides pyspark, Java 17 and the Iceberg jars. When
SERAC_URI is set and Spark cannot be set up, the tests FAIL rather than skip.

One Spark session (local[2]) serves the whole module. The Spark and PyIceberg
sides share the warehouse through the local file system, so the server must run
on this machine. Every test works in its own uniquely named namespace.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import pathlib
import re
import subprocess
import time
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal

import pytest

SERAC_URI = os.environ.get("SERAC_URI")
BACKEND = os.environ.get("SERAC_BACKEND", "unknown")
HERE = pathlib.Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(
    not SERAC_URI, reason="SERAC_URI is not set (tests/run.sh starts a server and sets it)"
)

RUN = uuid.uuid4().hex[:8]


# --------------------------------------------------------------------- setup
def _spark_env() -> dict[str, str]:
    env = dict(os.environ, SERAC_PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(HERE / "spark_setup.sh")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"tests/clients/spark_setup.sh failed (exit {proc.returncode}):\n"
            f"{proc.stderr[-6000:]}\n{proc.stdout[-2000:]}",
            pytrace=False,
        )
    out = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    for key in ("JAVA_HOME", "SERAC_SPARK_JARS"):
        if not out.get(key):
            pytest.fail(f"spark_setup.sh printed no {key}: {proc.stdout!r}", pytrace=False)
    return out


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    env = _spark_env()
    os.environ["JAVA_HOME"] = env["JAVA_HOME"]
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.pop("SPARK_HOME", None)  # use the pip-installed Spark
    importlib.invalidate_caches()
    try:
        from pyspark.sql import SparkSession
    except ImportError as e:  # installed by spark_setup.sh into sys.executable
        pytest.fail(f"pyspark is not importable after spark_setup.sh: {e}", pytrace=False)

    tmp = tmp_path_factory.mktemp("spark")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName(f"serac-tests-{BACKEND}")
        .config("spark.jars", env["SERAC_SPARK_JARS"])
        .config("spark.driver.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(tmp / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={tmp}")
        .config(
            "spark.sql.extensions",
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        )
        .config("spark.sql.catalog.serac", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.serac.type", "rest")
        .config("spark.sql.catalog.serac.uri", SERAC_URI)
        # always ask the server: other engines change the same tables
        .config("spark.sql.catalog.serac.cache-enabled", "false")
        .config("spark.sql.defaultCatalog", "serac")
    )
    try:
        session = builder.getOrCreate()
    except Exception as e:  # noqa: BLE001 - report any JVM start problem as a failure
        pytest.fail(f"could not start a Spark session: {e}", pytrace=False)
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


def _sql(spark, query: str) -> list[tuple]:
    return [tuple(r) for r in spark.sql(query).collect()]


def _one(spark, query: str):
    rows = _sql(spark, query)
    assert len(rows) == 1 and len(rows[0]) == 1, f"{query!r} returned {rows!r}"
    return rows[0][0]


@pytest.fixture
def ns(spark, request):
    """A fresh namespace for one test: spark_<backend>_<run>_<test name>."""
    test = re.sub(r"[^0-9A-Za-z]+", "_", request.node.name.removeprefix("test_")).strip("_")
    name = f"spark_{BACKEND}_{RUN}_{test}"[:100]
    spark.sql(f"CREATE NAMESPACE {name}")
    return name


def _warehouse_path() -> pathlib.Path:
    with urllib.request.urlopen(f"{SERAC_URI}/v1/config", timeout=10) as resp:
        config = json.load(resp)
    warehouse = (config.get("overrides") or {}).get("warehouse") or (
        config.get("defaults") or {}
    ).get("warehouse")
    assert warehouse, f"/v1/config names no warehouse: {config!r}"
    return _local_path(warehouse)


def _local_path(uri: str) -> pathlib.Path:
    parsed = urllib.parse.urlparse(uri)
    assert parsed.scheme in ("file", ""), f"not a local warehouse: {uri}"
    return pathlib.Path(urllib.parse.unquote(parsed.path))


def _table_location(spark, table: str) -> str:
    rows = _sql(spark, f"DESCRIBE TABLE EXTENDED {table}")
    locations = [r[1] for r in rows if r[0] == "Location"]
    assert len(locations) == 1, rows
    return locations[0]


def _snapshot_ids(spark, table: str) -> list[int]:
    return [r[0] for r in _sql(spark, f"SELECT snapshot_id FROM {table}.snapshots ORDER BY committed_at")]


def _current_snapshot(spark, table: str) -> int:
    return _one(spark, f"SELECT snapshot_id FROM {table}.refs WHERE name = 'main'")


def _ids(spark, query: str) -> list[int]:
    return [r[0] for r in _sql(spark, query)]


def _create_events(spark, table: str, extra_props: str = "") -> None:
    props = "'format-version'='2'" + (f", {extra_props}" if extra_props else "")
    spark.sql(
        f"""CREATE TABLE {table} (id BIGINT, ts TIMESTAMP, category STRING, amount DOUBLE)
            USING iceberg PARTITIONED BY (days(ts), bucket(4, id))
            TBLPROPERTIES ({props})"""
    )


def _insert_events(spark, table: str, start: int, count: int) -> None:
    """Rows id=start..start+count-1, ts spread over 5 days, amount = id * 1.5."""
    spark.sql(
        f"""INSERT INTO {table}
            SELECT id,
                   timestamp'2024-03-01 00:00:00' + make_interval(0, 0, 0, 0, CAST(id % 5 * 24 + id % 7 AS INT)),
                   element_at(array('alpha', 'beta', 'gamma'), CAST(id % 3 + 1 AS INT)),
                   id * 1.5
            FROM range({start}, {start + count})"""
    )


# ---------------------------------------------------------------- namespaces
def test_namespaces_nested(spark):
    top = f"spark_{BACKEND}_{RUN}_nsa"
    spark.sql(f"CREATE NAMESPACE {top} WITH DBPROPERTIES ('team'='spark-tests')")
    spark.sql(f"CREATE NAMESPACE {top}.b")
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS {top}.b")

    assert top in {r[0] for r in _sql(spark, "SHOW NAMESPACES")}
    assert _sql(spark, f"SHOW NAMESPACES IN {top}") == [(f"{top}.b",)]

    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE NAMESPACE {top}.b")

    spark.sql(f"ALTER NAMESPACE {top} SET PROPERTIES ('purpose'='spark e2e')")
    desc = {r[0]: r[1] for r in _sql(spark, f"DESCRIBE NAMESPACE EXTENDED {top}")}
    assert "team" in desc.get("Properties", "") and "spark-tests" in desc["Properties"], desc
    assert "purpose" in desc["Properties"] and "spark e2e" in desc["Properties"], desc

    # a table in the nested namespace
    spark.sql(f"CREATE TABLE {top}.b.t (id BIGINT) USING iceberg")
    spark.sql(f"INSERT INTO {top}.b.t VALUES (1), (2)")
    assert _one(spark, f"SELECT sum(id) FROM {top}.b.t") == 3
    assert [r[1] for r in _sql(spark, f"SHOW TABLES IN {top}.b")] == ["t"]

    with pytest.raises(Exception, match="(?i)not empty|NamespaceNotEmpty|contains"):
        spark.sql(f"DROP NAMESPACE {top}.b")
    spark.sql(f"DROP TABLE {top}.b.t PURGE")
    spark.sql(f"DROP NAMESPACE {top}.b")
    spark.sql(f"DROP NAMESPACE {top}")
    assert top not in {r[0] for r in _sql(spark, "SHOW NAMESPACES")}
    with pytest.raises(Exception, match="(?i)not found|SCHEMA_NOT_FOUND|NoSuchNamespace"):
        spark.sql(f"DESCRIBE NAMESPACE {top}").collect()


# -------------------------------------------------------- create/insert/select
def test_create_insert_select_partitioned(spark, ns):
    t = f"{ns}.events"
    _create_events(spark, t)
    described = _sql(spark, f"DESCRIBE TABLE {t}")
    parts = [r[1] for r in described if r[0].startswith("Part ")]
    assert parts == ["days(ts)", "bucket(4, id)"], described

    _insert_events(spark, t, 0, 100)
    assert _one(spark, f"SELECT count(*) FROM {t}") == 100
    assert _one(spark, f"SELECT sum(id) FROM {t}") == sum(range(100))
    assert _sql(spark, f"SELECT id, category, amount FROM {t} WHERE id = 7") == [(7, "beta", 10.5)]
    assert _one(spark, f"SELECT count(*) FROM {t} WHERE category = 'alpha'") == 34
    day = _one(spark, f"SELECT count(*) FROM {t} WHERE ts >= '2024-03-02' AND ts < '2024-03-03'")
    assert day == 20

    # 5 days x (up to) 4 buckets -> 20 partitions, each a data file
    partitions = _sql(spark, f"SELECT partition.ts_day, partition.id_bucket, record_count FROM {t}.partitions")
    assert len(partitions) == 20, partitions
    assert sum(r[2] for r in partitions) == 100
    assert {r[0] for r in partitions} == {dt.date(2024, 3, d) for d in range(1, 6)}
    assert {r[1] for r in partitions} == {0, 1, 2, 3}

    # a second insert is a second snapshot
    spark.sql(f"INSERT INTO {t} VALUES (1000, timestamp'2024-04-01 10:00:00', 'delta', 1.0)")
    assert _one(spark, f"SELECT count(*) FROM {t}") == 101
    assert len(_snapshot_ids(spark, t)) == 2
    assert t.split(".")[-1] in [r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")]


def test_names_with_url_characters(spark, ns):
    """Table names with '#', '?', '%', spaces and unicode are escaped path segments: Spark
    (Hadoop paths) writes and reads each table's own files, and none collide."""
    names = ["h#2", "h", "q?x", "q#x", "50%", "a%23b", "a#b", "sp ace", "ünï"]
    for i, name in enumerate(names):
        t = f"{ns}.`{name}`"
        spark.sql(f"CREATE TABLE {t} (id BIGINT, name STRING) USING iceberg")
        spark.sql(f"INSERT INTO {t} VALUES ({i}, '{name}/0')")
        spark.sql(f"INSERT INTO {t} VALUES ({i}, '{name}/1')")
    locations = set()
    for i, name in enumerate(names):
        t = f"{ns}.`{name}`"
        assert sorted(r[0] for r in _sql(spark, f"SELECT name FROM {t}")) == [f"{name}/0", f"{name}/1"], name
        assert len(_snapshot_ids(spark, t)) == 2, name
        location = _table_location(spark, t)
        assert location not in locations, (name, location)
        locations.add(location)
    assert {r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")} == set(names)


# -------------------------------------------------------- UPDATE/DELETE/MERGE
@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_update_delete_merge(spark, ns, mode):
    t = f"{ns}.rows_{mode.replace('-', '_')}"
    _create_events(
        spark,
        t,
        f"'write.update.mode'='{mode}', 'write.delete.mode'='{mode}', 'write.merge.mode'='{mode}'",
    )
    _insert_events(spark, t, 0, 50)

    spark.sql(f"UPDATE {t} SET amount = -1.0, category = 'updated' WHERE id < 10")
    assert _one(spark, f"SELECT count(*) FROM {t} WHERE category = 'updated'") == 10
    assert _one(spark, f"SELECT sum(amount) FROM {t} WHERE id < 10") == -10.0
    assert _one(spark, f"SELECT count(*) FROM {t}") == 50

    spark.sql(f"DELETE FROM {t} WHERE id >= 40")
    assert _one(spark, f"SELECT count(*) FROM {t}") == 40
    assert _one(spark, f"SELECT max(id) FROM {t}") == 39

    spark.sql(
        "CREATE OR REPLACE TEMP VIEW src AS SELECT * FROM VALUES "
        "(5L, 'merged'), (20L, 'merged'), (38L, 'gone'), (500L, 'new'), (501L, 'new') AS src(id, tag)"
    )
    spark.sql(
        f"""MERGE INTO {t} t USING src s ON t.id = s.id
            WHEN MATCHED AND s.tag = 'gone' THEN DELETE
            WHEN MATCHED THEN UPDATE SET t.category = s.tag, t.amount = 100.0
            WHEN NOT MATCHED THEN INSERT (id, ts, category, amount)
                 VALUES (s.id, timestamp'2024-03-09 00:00:00', s.tag, 0.0)"""
    )
    assert _one(spark, f"SELECT count(*) FROM {t}") == 41  # 40 - 1 deleted + 2 inserted
    assert _sql(spark, f"SELECT id, category, amount FROM {t} WHERE category IN ('merged', 'new') ORDER BY id") == [
        (5, "merged", 100.0),
        (20, "merged", 100.0),
        (500, "new", 0.0),
        (501, "new", 0.0),
    ]
    assert _one(spark, f"SELECT count(*) FROM {t} WHERE id = 38") == 0
    ops = [r[0] for r in _sql(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at")]
    assert len(ops) == 4, ops
    assert ops[0] == "append"
    if mode == "merge-on-read":
        assert _one(spark, f"SELECT count(*) FROM {t}.delete_files") > 0
    else:
        assert _one(spark, f"SELECT count(*) FROM {t}.delete_files") == 0


# -------------------------------------------------------- schema evolution
def test_schema_evolution(spark, ns):
    t = f"{ns}.evolve"
    spark.sql(f"CREATE TABLE {t} (id BIGINT, name STRING, legacy INT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'one', 10), (2, 'two', 20)")

    spark.sql(f"ALTER TABLE {t} ADD COLUMN score DOUBLE COMMENT 'added later'")
    spark.sql(f"ALTER TABLE {t} ADD COLUMNS (tags ARRAY<STRING>, info STRUCT<a: INT, b: STRING>)")
    spark.sql(f"ALTER TABLE {t} RENAME COLUMN name TO label")
    spark.sql(f"ALTER TABLE {t} DROP COLUMN legacy")
    spark.sql(f"ALTER TABLE {t} ALTER COLUMN id COMMENT 'the key'")
    spark.sql(f"INSERT INTO {t} VALUES (3, 'three', 3.5, array('x', 'y'), named_struct('a', 1, 'b', 'z'))")

    cols = [r[0] for r in _sql(spark, f"DESCRIBE TABLE {t}") if r[0] and not r[0].startswith("#")]
    assert cols[:5] == ["id", "label", "score", "tags", "info"], cols
    rows = _sql(spark, f"SELECT id, label, score, tags, info.a FROM {t} ORDER BY id")
    assert rows == [
        (1, "one", None, None, None),
        (2, "two", None, None, None),
        (3, "three", 3.5, ["x", "y"], 1),
    ]
    with pytest.raises(Exception, match="(?i)legacy"):
        spark.sql(f"SELECT legacy FROM {t}").collect()
    # the old snapshot still reads with its own schema
    first = _snapshot_ids(spark, t)[0]
    assert _sql(spark, f"SELECT id, legacy FROM {t} VERSION AS OF {first} ORDER BY id") == [(1, 10), (2, 20)]


# -------------------------------------------------------- partition evolution
def test_partition_evolution(spark, ns):
    t = f"{ns}.pevolve"
    spark.sql(f"CREATE TABLE {t} (id BIGINT, ts TIMESTAMP, category STRING) USING iceberg PARTITIONED BY (days(ts))")
    spark.sql(f"INSERT INTO {t} VALUES (1, timestamp'2024-01-01 01:00:00', 'a'), (2, timestamp'2024-01-02 01:00:00', 'b')")

    spark.sql(f"ALTER TABLE {t} ADD PARTITION FIELD category")
    spark.sql(f"INSERT INTO {t} VALUES (3, timestamp'2024-01-01 02:00:00', 'a'), (4, timestamp'2024-01-01 03:00:00', 'c')")
    spark.sql(f"ALTER TABLE {t} REPLACE PARTITION FIELD days(ts) WITH hours(ts)")
    spark.sql(f"INSERT INTO {t} VALUES (5, timestamp'2024-01-01 04:00:00', 'a')")
    spark.sql(f"ALTER TABLE {t} DROP PARTITION FIELD category")
    spark.sql(f"INSERT INTO {t} VALUES (6, timestamp'2024-01-01 05:00:00', 'a')")

    assert _ids(spark, f"SELECT id FROM {t} ORDER BY id") == [1, 2, 3, 4, 5, 6]
    assert _ids(spark, f"SELECT id FROM {t} WHERE category = 'a' ORDER BY id") == [1, 3, 5, 6]
    specs = _sql(spark, f"SELECT spec_id, count(*) FROM {t}.files GROUP BY spec_id ORDER BY spec_id")
    assert [s for s, _ in specs] == [0, 1, 2, 3], specs
    assert [n for _, n in specs] == [2, 2, 1, 1], specs
    create = _sql(spark, f"SHOW CREATE TABLE {t}")[0][0]
    assert "hours(ts)" in create and "category" not in create.split("PARTITIONED BY")[1].split(")")[0], create


# -------------------------------------------------------- table properties
def test_table_properties(spark, ns):
    t = f"{ns}.props"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg TBLPROPERTIES ('owner.team'='catalog', 'x'='1')")
    spark.sql(f"ALTER TABLE {t} SET TBLPROPERTIES ('x'='2', 'description'='serac test', 'write.target-file-size-bytes'='1048576')")
    props = dict(_sql(spark, f"SHOW TBLPROPERTIES {t}"))
    assert props["owner.team"] == "catalog"
    assert props["x"] == "2"
    assert props["description"] == "serac test"
    assert props["write.target-file-size-bytes"] == "1048576"
    assert _sql(spark, f"SHOW TBLPROPERTIES {t} ('x')") == [("x", "2")]

    spark.sql(f"ALTER TABLE {t} UNSET TBLPROPERTIES ('x')")
    props = dict(_sql(spark, f"SHOW TBLPROPERTIES {t}"))
    assert "x" not in props and props["owner.team"] == "catalog"
    # property changes make no snapshot
    spark.sql(f"INSERT INTO {t} VALUES (1)")
    assert len(_snapshot_ids(spark, t)) == 1


# -------------------------------------------------------- time travel
def test_time_travel(spark, ns):
    t = f"{ns}.travel"
    spark.sql(f"CREATE TABLE {t} (id BIGINT, v STRING) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1, 'a')")
    spark.sql(f"INSERT INTO {t} VALUES (2, 'b')")
    spark.sql(f"DELETE FROM {t} WHERE id = 1")
    snaps = _sql(spark, f"SELECT snapshot_id, committed_at FROM {t}.snapshots ORDER BY committed_at")
    assert len(snaps) == 3
    (s1, c1), (s2, c2), (s3, _) = snaps

    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF {s1}") == [1]
    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF {s2} ORDER BY id") == [1, 2]
    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF {s3}") == [2]
    assert _ids(spark, f"SELECT id FROM {t}") == [2]

    def ts_literal(ts: dt.datetime) -> str:  # session time zone is UTC
        return ts.strftime("%Y-%m-%d %H:%M:%S.%f")

    assert _ids(spark, f"SELECT id FROM {t} TIMESTAMP AS OF '{ts_literal(c1)}'") == [1]
    assert _ids(spark, f"SELECT id FROM {t} TIMESTAMP AS OF '{ts_literal(c2)}' ORDER BY id") == [1, 2]
    with pytest.raises(Exception, match="(?i)snapshot|before|older|no such|cannot"):
        spark.sql(f"SELECT id FROM {t} TIMESTAMP AS OF '2000-01-01 00:00:00'").collect()
    # DataFrame reader options
    df = spark.read.option("snapshot-id", s1).table(t)
    assert [r[0] for r in df.collect()] == [1]


# -------------------------------------------------------- branches and tags
def test_branches_and_tags(spark, ns):
    t = f"{ns}.tagged"
    spark.sql(f"CREATE TABLE {t} (id BIGINT) USING iceberg")
    spark.sql(f"INSERT INTO {t} VALUES (1), (2)")
    base = _current_snapshot(spark, t)

    spark.sql(f"ALTER TABLE {t} CREATE TAG v1 RETAIN 30 DAYS")
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH x")
    spark.sql(f"INSERT INTO {t}.branch_x VALUES (10)")
    spark.sql(f"INSERT INTO {t} VALUES (3)")

    assert _ids(spark, f"SELECT id FROM {t} ORDER BY id") == [1, 2, 3]
    assert _ids(spark, f"SELECT id FROM {t}.branch_x ORDER BY id") == [1, 2, 10]
    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF 'x' ORDER BY id") == [1, 2, 10]
    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF 'v1' ORDER BY id") == [1, 2]
    assert _ids(spark, f"SELECT id FROM {t}.tag_v1 ORDER BY id") == [1, 2]

    refs = {r[0]: (r[1], r[2]) for r in _sql(spark, f"SELECT name, type, snapshot_id FROM {t}.refs")}
    assert set(refs) == {"main", "v1", "x"}, refs
    assert refs["v1"] == ("TAG", base)
    assert refs["x"][0] == "BRANCH" and refs["x"][1] != base
    assert refs["main"][0] == "BRANCH" and refs["main"][1] not in (base, refs["x"][1])

    with pytest.raises(Exception, match="(?i)tag|snapshot"):
        spark.sql(f"INSERT INTO {t}.tag_v1 VALUES (99)")

    # a second branch fast-forwarded into main
    spark.sql(f"ALTER TABLE {t} CREATE BRANCH audit")
    spark.sql(f"INSERT INTO {t}.branch_audit VALUES (4)")
    spark.sql(f"CALL serac.system.fast_forward('{t}', 'main', 'audit')")
    assert _ids(spark, f"SELECT id FROM {t} ORDER BY id") == [1, 2, 3, 4]

    spark.sql(f"ALTER TABLE {t} REPLACE TAG v1 AS OF VERSION {_current_snapshot(spark, t)}")
    assert _ids(spark, f"SELECT id FROM {t} VERSION AS OF 'v1' ORDER BY id") == [1, 2, 3, 4]
    spark.sql(f"ALTER TABLE {t} DROP TAG v1")
    spark.sql(f"ALTER TABLE {t} DROP BRANCH x")
    assert {r[0] for r in _sql(spark, f"SELECT name FROM {t}.refs")} == {"main", "audit"}


# -------------------------------------------------------- metadata tables
def test_metadata_tables(spark, ns):
    t = f"{ns}.meta"
    _create_events(spark, t)
    _insert_events(spark, t, 0, 20)
    _insert_events(spark, t, 20, 20)
    spark.sql(f"ALTER TABLE {t} CREATE TAG first_two")

    snaps = _sql(spark, f"SELECT snapshot_id, parent_id, operation, summary['added-records'] FROM {t}.snapshots ORDER BY committed_at")
    assert len(snaps) == 2
    assert snaps[0][1] is None and snaps[1][1] == snaps[0][0]
    assert [s[2] for s in snaps] == ["append", "append"]
    assert [s[3] for s in snaps] == ["20", "20"]

    history = _sql(spark, f"SELECT snapshot_id, parent_id, is_current_ancestor FROM {t}.history ORDER BY made_current_at")
    assert [(h[0], h[1], h[2]) for h in history] == [(snaps[0][0], None, True), (snaps[1][0], snaps[0][0], True)]

    files = _sql(spark, f"SELECT content, file_path, file_format, record_count, spec_id FROM {t}.files")
    assert sum(f[3] for f in files) == 40
    assert {f[0] for f in files} == {0} and {f[2] for f in files} == {"PARQUET"} and {f[4] for f in files} == {0}
    location = _table_location(spark, t)
    for f in files:
        assert _local_path(f[1]).is_relative_to(_local_path(location) / "data"), (f[1], location)
        assert _local_path(f[1]).is_file(), f[1]

    refs = _sql(spark, f"SELECT name, type, snapshot_id FROM {t}.refs ORDER BY name")
    assert refs == [("first_two", "TAG", snaps[1][0]), ("main", "BRANCH", snaps[1][0])]

    assert _one(spark, f"SELECT count(*) FROM {t}.manifests") >= 2
    assert _one(spark, f"SELECT sum(record_count) FROM {t}.partitions") == 40
    assert _one(spark, f"SELECT count(*) FROM {t}.metadata_log_entries") >= 3
    assert _one(spark, f"SELECT count(*) FROM {t}.all_data_files") == len(files)


# -------------------------------------------------------- procedures
def test_procedures(spark, ns):
    t = f"{ns}.procs"
    _create_events(spark, t)
    for i in range(4):  # four appends -> several small files per partition
        _insert_events(spark, t, i * 10, 10)
    snaps = _snapshot_ids(spark, t)
    assert len(snaps) == 4

    # rollback_to_snapshot
    result = _sql(spark, f"CALL serac.system.rollback_to_snapshot('{t}', {snaps[1]})")
    assert result == [(snaps[3], snaps[1])]
    assert _current_snapshot(spark, t) == snaps[1]
    assert _one(spark, f"SELECT count(*) FROM {t}") == 20
    spark.sql(f"CALL serac.system.set_current_snapshot(table => '{t}', snapshot_id => {snaps[3]})")
    assert _one(spark, f"SELECT count(*) FROM {t}") == 40

    # rewrite_data_files compacts the 4 files of each partition into 1
    files_before = _one(spark, f"SELECT count(*) FROM {t}.files")
    rewritten, added = _sql(
        spark,
        f"""CALL serac.system.rewrite_data_files(table => '{t}', options => map('min-input-files', '2'))""",
    )[0][:2]
    files_after = _one(spark, f"SELECT count(*) FROM {t}.files")
    assert rewritten > 0 and added > 0 and rewritten > added, (rewritten, added)
    assert files_after == files_before - rewritten + added
    assert _one(spark, f"SELECT count(*) FROM {t}") == 40
    assert _one(spark, f"SELECT sum(id) FROM {t}") == sum(range(40))
    assert _one(spark, f"SELECT operation FROM {t}.snapshots ORDER BY committed_at DESC LIMIT 1") == "replace"

    # rewrite_manifests
    spark.sql(f"CALL serac.system.rewrite_manifests('{t}')")
    assert _one(spark, f"SELECT count(*) FROM {t}") == 40

    # expire_snapshots keeps only the current one and deletes unreachable files
    current = _current_snapshot(spark, t)
    old_files = [r[0] for r in _sql(spark, f"SELECT file_path FROM {t}.all_data_files")]
    now = _one(spark, "SELECT current_timestamp()")
    expired = _sql(
        spark,
        f"CALL serac.system.expire_snapshots(table => '{t}', older_than => TIMESTAMP '{now:%Y-%m-%d %H:%M:%S.%f}', retain_last => 1)",
    )[0]
    assert expired[0] > 0, expired  # deleted_data_files_count
    assert _snapshot_ids(spark, t) == [current]
    assert _one(spark, f"SELECT count(*) FROM {t}") == 40
    live = {r[0] for r in _sql(spark, f"SELECT file_path FROM {t}.files")}
    for path in old_files:
        assert _local_path(path).exists() == (path in live), path


# -------------------------------------------------------- CTAS / RTAS
def test_ctas_and_replace(spark, ns):
    src = f"{ns}.src"
    spark.sql(f"CREATE TABLE {src} (id BIGINT, v STRING) USING iceberg")
    spark.sql(f"INSERT INTO {src} VALUES (1, 'a'), (2, 'b'), (3, 'c')")

    t = f"{ns}.ctas"
    spark.sql(f"CREATE TABLE {t} USING iceberg PARTITIONED BY (bucket(2, id)) AS SELECT id, v FROM {src} WHERE id < 3")
    assert _sql(spark, f"SELECT id, v FROM {t} ORDER BY id") == [(1, "a"), (2, "b")]
    first = _current_snapshot(spark, t)

    spark.sql(
        f"""CREATE OR REPLACE TABLE {t} USING iceberg TBLPROPERTIES ('replaced'='true')
            AS SELECT id * 10 AS id, upper(v) AS v, id % 2 = 0 AS even FROM {src}"""
    )
    assert _sql(spark, f"SELECT id, v, even FROM {t} ORDER BY id") == [(10, "A", False), (20, "B", True), (30, "C", False)]
    assert dict(_sql(spark, f"SHOW TBLPROPERTIES {t}")).get("replaced") == "true"
    assert "PARTITIONED BY" not in _sql(spark, f"SHOW CREATE TABLE {t}")[0][0]
    # the table kept its history: the old snapshot is still there
    assert first in _snapshot_ids(spark, t)
    assert _sql(spark, f"SELECT id, v FROM {t} VERSION AS OF {first} ORDER BY id") == [(1, "a"), (2, "b")]

    spark.sql(f"REPLACE TABLE {t} (k STRING) USING iceberg")
    assert _sql(spark, f"SELECT * FROM {t}") == []
    assert [r[0] for r in _sql(spark, f"DESCRIBE TABLE {t}")][:1] == ["k"]

    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE TABLE {t} USING iceberg AS SELECT 1 AS x")

    # DataFrame API: writeTo().createOrReplace()
    df = spark.createDataFrame([(7, "seven")], "id BIGINT, v STRING")
    df.writeTo(f"{ns}.df_written").using("iceberg").createOrReplace()
    df.writeTo(f"{ns}.df_written").append()
    assert _sql(spark, f"SELECT id, v FROM {ns}.df_written") == [(7, "seven"), (7, "seven")]


# -------------------------------------------------------- rename / drop
def test_rename_table(spark, ns):
    spark.sql(f"CREATE NAMESPACE {ns}_other")
    spark.sql(f"CREATE TABLE {ns}.before (id BIGINT) USING iceberg")
    spark.sql(f"INSERT INTO {ns}.before VALUES (42)")
    spark.sql(f"ALTER TABLE {ns}.before RENAME TO {ns}.after")
    assert _ids(spark, f"SELECT id FROM {ns}.after") == [42]
    with pytest.raises(Exception, match="(?i)not found|cannot be found|TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM {ns}.before").collect()
    spark.sql(f"ALTER TABLE {ns}.after RENAME TO {ns}_other.moved")
    assert _ids(spark, f"SELECT id FROM {ns}_other.moved") == [42]
    assert [r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")] == []


def test_views(spark, ns):
    """Iceberg views through the REST catalog: CREATE VIEW, SHOW VIEWS, SELECT from the view,
    CREATE OR REPLACE VIEW, and DROP VIEW; a view may not take a table's name."""
    _create_events(spark, f"{ns}.events")
    _insert_events(spark, f"{ns}.events", 0, 30)
    spark.sql(f"CREATE VIEW {ns}.big AS SELECT id, amount FROM {ns}.events WHERE amount >= 30")
    def catalog_views() -> list[str]:
        # SHOW VIEWS also lists the session's temporary views (isTemporary, the third column).
        return [r[1] for r in _sql(spark, f"SHOW VIEWS IN {ns}") if not r[2]]

    assert catalog_views() == ["big"]
    assert _ids(spark, f"SELECT id FROM {ns}.big ORDER BY id") == list(range(20, 30))
    # The view is an Iceberg view stored by the server, readable through its REST API.
    with urllib.request.urlopen(f"{SERAC_URI.rstrip('/')}/v1/namespaces/{ns}/views/big", timeout=10) as resp:
        view = json.load(resp)
    sql = view["metadata"]["versions"][-1]["representations"][0]["sql"]
    assert "amount >= 30" in sql, sql

    spark.sql(f"CREATE OR REPLACE VIEW {ns}.big AS SELECT id, amount FROM {ns}.events WHERE amount >= 40")
    assert _ids(spark, f"SELECT id FROM {ns}.big ORDER BY id") == list(range(27, 30))
    with pytest.raises(Exception, match="(?i)already exists"):
        spark.sql(f"CREATE VIEW {ns}.events AS SELECT 1 AS one")
    spark.sql(f"DROP VIEW {ns}.big")
    assert catalog_views() == []
    with pytest.raises(Exception, match="(?i)not found|cannot be found|TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM {ns}.big").collect()


def _http(method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{SERAC_URI.rstrip('/')}{path}", data=data, method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read()
            return resp.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _server_plan(ns: str, table: str, request: dict) -> dict[str, list[str]]:
    """Plans through the server (fetching plan tasks when the plan is split); returns each
    data file with the delete files it must apply."""
    base = f"/v1/namespaces/{ns}/tables/{table}"
    status, result = _http("POST", f"{base}/plan", request)
    assert status == 200 and result["status"] == "completed", result
    parts = [result] if "file-scan-tasks" in result else []
    for plan_task in result.get("plan-tasks", []):
        status, part = _http("POST", f"{base}/tasks", {"plan-task": plan_task})
        assert status == 200, part
        parts.append(part)
    if result.get("plan-tasks"):
        # A split plan can be fetched again, then cancelled: afterwards it is gone.
        status, again = _http("GET", f"{base}/plan/{result['plan-id']}")
        assert status == 200 and again["plan-tasks"] == result["plan-tasks"], again
        assert _http("DELETE", f"{base}/plan/{result['plan-id']}")[0] == 204
        assert _http("GET", f"{base}/plan/{result['plan-id']}")[0] == 404
        assert _http("POST", f"{base}/tasks", {"plan-task": result["plan-tasks"][0]})[0] == 404
    planned: dict[str, list[str]] = {}
    for part in parts:
        deletes = part.get("delete-files", [])
        for task in part["file-scan-tasks"]:
            refs = task.get("delete-file-references", [])
            planned[task["data-file"]["file-path"]] = sorted(deletes[i]["file-path"] for i in refs)
            assert task["data-file"]["record-count"] > 0
            if "filter" in request:
                assert task["residual-filter"] == request["filter"], task
        for delete in deletes:
            assert delete["content"] in ("position-deletes", "equality-deletes"), delete
            assert delete["record-count"] > 0, delete
    return planned


def test_server_side_scan_planning(spark, ns):
    """Serac's plan returns exactly the data files (and delete files) PyIceberg's own
    client-side planning reads, for filters, partitions, delete files and older snapshots."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, GreaterThan, In

    table = f"{ns}.planned"
    spark.sql(
        f"""CREATE TABLE {table} (id BIGINT, category STRING) USING iceberg
            PARTITIONED BY (category)
            TBLPROPERTIES ('format-version'='2', 'write.delete.mode'='merge-on-read',
                           'write.update.mode'='merge-on-read')"""
    )
    for start in (0, 100, 200):
        spark.sql(
            f"""INSERT INTO {table} SELECT id, element_at(array('alpha', 'beta', 'gamma'),
                CAST(id % 3 + 1 AS INT)) FROM range({start}, {start + 60})"""
        )
    first = _snapshot_ids(spark, table)[0]
    spark.sql(f"DELETE FROM {table} WHERE id % 5 = 0")  # position delete files

    tbl = _pyiceberg_catalog().load_table(table)

    def client_plan(row_filter, snapshot_id=None) -> dict[str, list[str]]:
        tasks = tbl.scan(row_filter=row_filter, snapshot_id=snapshot_id).plan_files()
        return {t.file.file_path: sorted(d.file_path for d in t.delete_files) for t in tasks}

    cases = [
        ({}, AlwaysTrue(), None),
        ({"filter": {"type": "eq", "term": "category", "value": "beta"}}, EqualTo("category", "beta"), None),
        (
            {"filter": {"type": "and",
                        "left": {"type": "in", "term": "category", "values": ["alpha", "gamma"]},
                        "right": {"type": "gt", "term": "id", "value": 150}}},
            And(In("category", {"alpha", "gamma"}), GreaterThan("id", 150)),
            None,
        ),
        ({"snapshot-id": first}, AlwaysTrue(), first),
    ]
    for request, row_filter, snapshot_id in cases:
        expected = client_plan(row_filter, snapshot_id)
        assert expected, f"PyIceberg planned nothing for {request}"
        assert _server_plan(ns, "planned", request) == expected, request
    # The delete files were really exercised.
    assert any(client_plan(AlwaysTrue()).values())

    status, body = _http("POST", f"/v1/namespaces/{ns}/tables/planned/plan",
                         {"filter": {"type": "eq", "term": "nope", "value": 1}})
    assert status == 400 and "nope" in body["error"]["message"], body
    assert _http("GET", f"/v1/namespaces/{ns}/tables/planned/plan/not-a-plan")[0] == 404


def _files_under(path: pathlib.Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if not p.is_dir())


def test_drop_table_purge(spark, ns):
    warehouse = _warehouse_path()
    t = f"{ns}.purged"
    _create_events(spark, t, "'write.delete.mode'='merge-on-read'")
    _insert_events(spark, t, 0, 10)
    spark.sql(f"DELETE FROM {t} WHERE id = 1")  # a position delete file too
    location = _local_path(_table_location(spark, t))
    assert location.is_relative_to(warehouse), (location, warehouse)
    assert location.is_dir() and any(location.rglob("*.parquet")), location
    assert any((location / "metadata").glob("*.metadata.json")), location

    kept = f"{ns}.kept"
    spark.sql(f"CREATE TABLE {kept} (id BIGINT) USING iceberg")
    spark.sql(f"INSERT INTO {kept} VALUES (1)")
    kept_location = _local_path(_table_location(spark, kept))

    # Iceberg 1.10's Spark DROP TABLE ... PURGE drops the table in the catalog without
    # purgeRequested and deletes every reachable file itself; Hadoop's local file system
    # leaves the (then empty) directories behind.
    spark.sql(f"DROP TABLE {t} PURGE")
    assert "purged" not in [r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")]
    assert not location.exists() or _files_under(location) == [], _files_under(location)[:20]
    with pytest.raises(Exception, match="(?i)not found|cannot be found|TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM {t}").collect()

    spark.sql(f"DROP TABLE {kept}")  # no purge: the files stay
    assert kept_location.is_dir() and any(kept_location.rglob("*.parquet"))
    with pytest.raises(Exception, match="(?i)not found|cannot be found|TABLE_OR_VIEW_NOT_FOUND"):
        spark.sql(f"SELECT * FROM {kept}").collect()


def test_server_side_purge_of_spark_table(spark, ns):
    """purgeRequested=true (here sent by PyIceberg) on a table Spark wrote: the server
    deletes its files, which Spark names with `file:/` URIs, and its whole directory."""
    warehouse = _warehouse_path()
    t = f"{ns}.server_purged"
    _create_events(spark, t, "'write.delete.mode'='merge-on-read'")
    _insert_events(spark, t, 0, 10)
    spark.sql(f"DELETE FROM {t} WHERE id = 1")
    spark.sql(f"INSERT INTO {t} VALUES (99, timestamp'2024-05-01 00:00:00', 'x', 0.0)")
    location = _local_path(_table_location(spark, t))
    assert location.is_relative_to(warehouse), (location, warehouse)
    assert any(location.rglob("*.parquet"))

    _pyiceberg_catalog().purge_table(t)
    assert "server_purged" not in [r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")]
    # The drop answers at once; the purge runs in the background (a durable task).
    deadline = time.monotonic() + 30
    while location.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    leftovers = _files_under(location) if location.exists() else []
    assert not location.exists(), f"table directory {location} survived the purge: {leftovers[:20]}"


def test_table_named_like_a_metadata_table(spark, ns):
    """Spark asks for `ns.history` as table `history` first; when that is missing, Iceberg's
    REST client retries it as metadata table `history` of table `ns` in the EMPTY namespace
    (GET .../namespaces//tables/ns) and only a 404 lets CREATE TABLE go on."""
    for name in ("history", "refs", "snapshots"):
        spark.sql(f"CREATE TABLE {ns}.{name} (id BIGINT) USING iceberg")
        spark.sql(f"INSERT INTO {ns}.{name} VALUES (1)")
        assert _ids(spark, f"SELECT id FROM {ns}.{name}") == [1]
    assert sorted(r[1] for r in _sql(spark, f"SHOW TABLES IN {ns}")) == ["history", "refs", "snapshots"]


# -------------------------------------------------------- cross-engine
def _pyiceberg_catalog():
    from pyiceberg.catalog import load_catalog

    return load_catalog(f"serac_spark_{RUN}", type="rest", uri=SERAC_URI)


def test_spark_writes_pyiceberg_reads(spark, ns):
    t = f"{ns}.from_spark"
    spark.sql(
        f"""CREATE TABLE {t} (id BIGINT, name STRING, price DECIMAL(10, 2), qty INT, ok BOOLEAN,
                               day DATE, ts TIMESTAMP, score DOUBLE)
            USING iceberg PARTITIONED BY (days(ts), bucket(4, id))"""
    )
    spark.sql(
        f"""INSERT INTO {t}
            SELECT id, concat('n', id), CAST(id * 1.25 AS DECIMAL(10, 2)), CAST(id AS INT), id % 2 = 0,
                   date_add(DATE'2024-02-27', CAST(id % 4 AS INT)),
                   timestamp'2024-02-27 08:00:00' + make_interval(0, 0, 0, 0, CAST(id % 3 * 24 AS INT), CAST(id AS INT)),
                   CASE WHEN id % 5 = 0 THEN NULL ELSE id / 4.0 END
            FROM range(0, 60)"""
    )
    spark.sql(f"DELETE FROM {t} WHERE id IN (3, 4)")
    spark.sql(f"UPDATE {t} SET name = 'renamed' WHERE id = 10")
    cols = "id, name, price, qty, ok, day, unix_micros(ts) AS ts, score"
    expected = _sql(spark, f"SELECT {cols} FROM {t} ORDER BY id")
    assert len(expected) == 58

    catalog = _pyiceberg_catalog()
    table = catalog.load_table(t)
    assert table.current_snapshot().snapshot_id == _current_snapshot(spark, t)
    assert [f.name for f in table.spec().fields] == ["ts_day", "id_bucket"]
    data = table.scan().to_arrow().sort_by("id").to_pylist()
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    got = [
        (
            r["id"], r["name"], r["price"], r["qty"], r["ok"], r["day"],
            (r["ts"] - epoch) // dt.timedelta(microseconds=1), r["score"],
        )
        for r in data
    ]
    assert got == expected
    assert got[7] == (9, "n9", Decimal("11.25"), 9, False, dt.date(2024, 2, 28), got[7][6], 2.25)
    filtered = table.scan(row_filter="id >= 50").to_arrow()
    assert sorted(filtered.column("id").to_pylist()) == list(range(50, 60))


def test_pyiceberg_writes_spark_updates(spark, ns):
    import pyarrow as pa
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, LongType, NestedField, StringType

    catalog = _pyiceberg_catalog()
    ident = f"{ns}.from_pyiceberg"
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "amount", DoubleType(), required=False),
        NestedField(4, "region", StringType(), required=False),
    )
    spec = PartitionSpec(PartitionField(source_id=4, field_id=1000, transform=IdentityTransform(), name="region"))
    table = catalog.create_table(ident, schema=schema, partition_spec=spec)
    arrow_schema = pa.schema(
        [("id", pa.int64()), ("name", pa.string()), ("amount", pa.float64()), ("region", pa.string())]
    )
    table.append(
        pa.Table.from_pylist(
            [{"id": i, "name": f"p{i}", "amount": float(i), "region": "eu" if i % 2 else "us"} for i in range(10)],
            schema=arrow_schema,
        )
    )

    assert _one(spark, f"SELECT count(*) FROM {ident}") == 10
    spark.sql(f"INSERT INTO {ident} VALUES (100, 'spark', 1.5, 'apac'), (101, 'spark', 2.5, 'eu')")
    spark.sql(f"UPDATE {ident} SET amount = amount * 10, name = 'upd' WHERE id < 3")
    spark.sql(f"DELETE FROM {ident} WHERE id = 9")
    spark.sql(f"ALTER TABLE {ident} SET TBLPROPERTIES ('write.delete.mode'='merge-on-read')")
    spark.sql(f"DELETE FROM {ident} WHERE id = 8")
    expected = _sql(spark, f"SELECT id, name, amount, region FROM {ident} ORDER BY id")
    assert len(expected) == 10

    table = catalog.load_table(ident)
    assert table.properties.get("write.delete.mode") == "merge-on-read"
    # pyiceberg append, INSERT, UPDATE, DELETE, DELETE (properties make no snapshot)
    assert len(table.metadata.snapshots) == 5
    got = [tuple(r.values()) for r in table.scan().to_arrow().sort_by("id").to_pylist()]
    assert got == expected
    assert got[:3] == [(0, "upd", 0.0, "us"), (1, "upd", 10.0, "eu"), (2, "upd", 20.0, "us")]
    assert got[-2:] == [(100, "spark", 1.5, "apac"), (101, "spark", 2.5, "eu")]

    # and back again: PyIceberg appends, Spark sees it (no stale cache)
    table.append(pa.Table.from_pylist([{"id": 200, "name": "py", "amount": 0.5, "region": "us"}], schema=arrow_schema))
    assert _ids(spark, f"SELECT id FROM {ident} WHERE id >= 100 ORDER BY id") == [100, 101, 200]


# ------------------------------------------------- authentication (OAuth2)
AUTH_URI = os.environ.get("SERAC_AUTH_URI")


def _secured_catalog(spark, name: str, **props: str) -> None:
    """Configures a REST catalog on the authenticated server (catalogs load on first use)."""
    settings = {
        "": "org.apache.iceberg.spark.SparkCatalog",
        ".type": "rest",
        ".uri": AUTH_URI,
        ".cache-enabled": "false",
        **{f".{k}": v for k, v in props.items()},
    }
    for key, value in settings.items():
        spark.conf.set(f"spark.sql.catalog.{name}{key}", value)


@pytest.mark.skipif(not AUTH_URI, reason="SERAC_AUTH_URI is not set (tests/run.sh sets it)")
def test_secured_catalog_with_client_credentials(spark):
    """Spark's own OAuth2 client credentials flow (`credential`) against `--auth oauth2`."""
    _secured_catalog(
        spark,
        "secured",
        credential=os.environ["SERAC_AUTH_CREDENTIAL"],
        **{"oauth2-server-uri": f"{AUTH_URI}/v1/oauth/tokens", "scope": "catalog"},
    )
    ns = f"spark_auth_{BACKEND}_{RUN}"
    spark.sql(f"CREATE NAMESPACE secured.{ns}")
    spark.sql(f"CREATE TABLE secured.{ns}.t (id bigint, v string) USING iceberg")
    spark.sql(f"INSERT INTO secured.{ns}.t VALUES (1, 'a'), (2, 'b')")
    assert _sql(spark, f"SELECT id, v FROM secured.{ns}.t ORDER BY id") == [(1, "a"), (2, "b")]
    # The same server without credentials refuses Spark.
    _secured_catalog(spark, "unauthenticated")
    with pytest.raises(Exception, match="NotAuthorized|401|bearer token"):
        spark.sql("SHOW NAMESPACES IN unauthenticated").collect()


@pytest.mark.skipif(
    not os.environ.get("SERAC_AUTH_OIDC_ISSUER"),
    reason="SERAC_AUTH_OIDC_ISSUER is not set (tests/run.sh sets it)",
)
def test_secured_catalog_with_a_provider_token(spark):
    """A static bearer JWT of the OpenID Connect issuer as the catalog property `token`."""
    from test_auth import external_admin, oidc_token

    _secured_catalog(spark, "oidc", token=oidc_token(external_admin()))
    ns = f"spark_oidc_{BACKEND}_{RUN}"
    spark.sql(f"CREATE NAMESPACE oidc.{ns}")
    spark.sql(f"CREATE TABLE oidc.{ns}.t (id bigint) USING iceberg")
    spark.sql(f"INSERT INTO oidc.{ns}.t VALUES (5), (6)")
    assert _sql(spark, f"SELECT id FROM oidc.{ns}.t ORDER BY id") == [(5,), (6,)]
