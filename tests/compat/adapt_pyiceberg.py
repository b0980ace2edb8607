#!/usr/bin/env python3
"""Adapts an unpacked copy of the pyiceberg 0.12.0 sdist so that its integration tests
(tests/ -m integration, and dev/provision.py) run against Serac instead of upstream's
docker-compose stack (iceberg-rest-fixture + MinIO + Hive + Spark 4 Connect).

Only the unpacked copy is changed; nothing of pyiceberg is kept in this repository.
Every edit is a literal substitution that must match a known number of times, so a
different sdist fails loudly here instead of silently testing something else.

What changes, and why (nothing else does):

1. REST catalog fixtures: "http://localhost:8181" becomes Serac's URI (--uri). The
   MinIO settings ("s3.endpoint", "s3.access-key-id", "s3.secret-access-key") are
   dropped from the REST catalog definitions: Serac serves a file:// warehouse and
   answers no storage configuration, so PyIceberg uses its local file IO.
2. The `spark` fixture and dev/provision.py: upstream connects to a Spark 4 Connect
   server in docker (sc://localhost:15002). Here both use an in-process Spark 3.5
   session with Iceberg's 1.10.2 runtime jars (tests/clients/spark_setup.sh), and the
   same settings as upstream's dev/spark/spark-defaults.conf for the `rest` catalog
   (the default catalog, cache disabled, ANSI mode off), pointed at Serac. The `hive`
   catalog is left out of provisioning (no Hive metastore here).
3. Data files the tests put at fixed bucket paths ("s3://warehouse/...") go to the
   same relative paths under Serac's file:// warehouse (--warehouse), and the
   assertions that paths are "s3://" URIs check for the "file:" scheme instead.
4. Three warnings raised only by an in-process PySpark 3.5 (its distutils version check,
   its use of pandas' deprecated is_datetime64tz_dtype, py4j's unclosed gateway sockets)
   are ignored; upstream's pyproject turns every warning into an error, and its Spark 4
   Connect client raises none of them.
5. The sdist's own `pyiceberg/` source tree is moved aside, so the tests import the
   installed pyiceberg 0.12.0 wheel (same release, with its compiled Avro decoder),
   while `tests.conftest` stays importable from the sdist root.

Usage: adapt_pyiceberg.py SRC_DIR --uri http://127.0.0.1:PORT --warehouse file:///path/warehouse
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

SPARK_HELPER = '''\
"""Written by Serac's tests/compat/adapt_pyiceberg.py: an in-process Spark 3.5 session
with the Iceberg runtime, configured like upstream's dev/spark/spark-defaults.conf for
the `rest` catalog, pointed at Serac (SERAC_URI). Needs JAVA_HOME and SERAC_SPARK_JARS."""

import os


def local_spark():
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.pop("SPARK_HOME", None)  # the pip-installed Spark
    return (
        SparkSession.builder.master("local[2]")
        .appName("pyiceberg-integration-on-serac")
        .config("spark.jars", os.environ["SERAC_SPARK_JARS"])
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.sql.catalog.rest", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.rest.type", "rest")
        .config("spark.sql.catalog.rest.uri", os.environ["SERAC_URI"])
        .config("spark.sql.catalog.rest.cache-enabled", "false")
        .config("spark.sql.defaultCatalog", "rest")
        .config("spark.sql.ansi.enabled", "false")
        # Spark Connect (upstream) always converts toPandas() through Arrow: structs become
        # dicts, not Rows. Classic Spark 3.5 does the same with Arrow enabled.
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", os.environ.get("SERAC_SPARK_DRIVER_MEMORY", "2g"))
        .getOrCreate()
    )
'''


class Adapter:
    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self.log: list[str] = []

    def sub(self, rel: str, old: str, new: str, count: int | None = None, regex: bool = False) -> None:
        """Replace `old` by `new` in file `rel`; `count` (if given) is the exact number of matches."""
        path = self.root / rel
        text = path.read_text()
        if regex:
            found = len(re.findall(old, text, flags=re.M | re.S))
        else:
            found = text.count(old)
        if found == 0 or (count is not None and found != count):
            want = "at least 1" if count is None else str(count)
            sys.exit(f"adapt_pyiceberg: {rel}: expected {want} match(es) of {old!r}, found {found}")
        if regex:
            text = re.sub(old, new, text, flags=re.M | re.S)
        else:
            text = text.replace(old, new)
        path.write_text(text)
        self.log.append(f"{rel}: {found} x {old[:60]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=pathlib.Path, help="unpacked pyiceberg-0.12.0 sdist")
    ap.add_argument("--uri", required=True, help="Serac's base URI, e.g. http://127.0.0.1:8181")
    ap.add_argument("--warehouse", required=True, help="Serac's warehouse root, file:///...")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    root: pathlib.Path = args.src.resolve()
    if not (root / "tests" / "integration").is_dir() or not (root / "dev" / "provision.py").is_file():
        sys.exit(f"adapt_pyiceberg: {root} does not look like the pyiceberg sdist")
    if (root / "serac_compat.py").exists():
        sys.exit(f"adapt_pyiceberg: {root} is already adapted; unpack a fresh copy")
    if not args.warehouse.startswith("file:///"):
        sys.exit("adapt_pyiceberg: --warehouse must be a file:/// URI")
    warehouse = args.warehouse.rstrip("/")
    a = Adapter(root)

    # 1. REST catalog URI and MinIO settings.
    s3_line = r'^[ \t]*"s3\.(?:endpoint|access-key-id|secret-access-key)": "[^"\n]*",[ \t]*\n'
    rest_files = {
        # file: (URI occurrences, s3 setting lines to drop)
        "tests/conftest.py": (1, 6),  # session_catalog (3) + session_catalog_hive (3, unused: no Hive)
        "tests/integration/test_catalog.py": (1, 3),  # rest_catalog + hive_catalog (3)
        "tests/integration/test_rest_manifest.py": (1, 3),
        "tests/integration/test_rest_schema.py": (1, 3),
        "tests/integration/test_rest_scan_planning_integration.py": (1, 3),
        "dev/provision.py": (1, 6),
    }
    for rel, (uris, s3_lines) in rest_files.items():
        a.sub(rel, '"http://localhost:8181"', repr(args.uri).replace("'", '"'), count=uris)
        a.sub(rel, s3_line, "", count=s3_lines, regex=True)

    # 2. Spark: in-process Spark 3.5 instead of Spark 4 Connect; no Hive catalog.
    (root / "serac_compat.py").write_text(SPARK_HELPER)
    a.sub(
        "tests/conftest.py",
        '    # Create SparkSession against the remote Spark Connect server\n'
        '    spark = SparkSession.builder.remote("sc://localhost:15002").getOrCreate()\n',
        "    from serac_compat import local_spark  # Serac: in-process Spark 3.5, not Spark 4 Connect\n\n"
        "    spark = local_spark()\n",
        count=1,
    )
    a.sub(
        "dev/provision.py",
        '# Create SparkSession against the remote Spark Connect server\n'
        'spark = SparkSession.builder.remote("sc://localhost:15002").getOrCreate()\n',
        "from serac_compat import local_spark  # Serac: in-process Spark 3.5, not Spark 4 Connect\n\n"
        "spark = local_spark()\n",
        count=1,
    )
    a.sub(
        "dev/provision.py",
        r'    "hive": load_catalog\(\n        "hive",\n        \*\*\{\n.*?        \},\n    \),\n',
        "    # Serac: no Hive metastore here; only the REST catalog is provisioned.\n",
        count=1,
        regex=True,
    )

    # 3. Fixed bucket paths -> the file:// warehouse.
    a.sub("tests/integration/test_add_files.py", 'f"s3://warehouse/', f'f"{warehouse}/', count=22)
    a.sub("tests/integration/test_add_files.py", '"s3://warehouse/', f'"{warehouse}/', count=3)
    a.sub("tests/integration/test_writes/test_writes.py", 'startswith("s3://warehouse/', f'startswith("{warehouse}/', count=2)
    # (a scheme check: Spark's Hadoop file system writes "file:/..." paths, PyIceberg "file:///...")
    a.sub("tests/integration/test_writes/test_writes.py", '.startswith("s3://")', '.startswith("file:")', count=1)
    a.sub("tests/integration/test_inspect_table.py", '.startswith("s3://")', '.startswith("file:")', count=2)

    # 4. Warnings that only an in-process PySpark 3.5 raises (the suite turns warnings into
    # errors): it checks the pandas version with distutils' LooseVersion and calls pandas'
    # deprecated is_datetime64tz_dtype in toPandas(), and py4j leaves its gateway sockets to
    # the garbage collector. The Spark 4 Connect client does none of this.
    a.sub(
        "pyproject.toml",
        'filterwarnings = [\n  "error",\n',
        'filterwarnings = [\n  "error",\n'
        '  # Serac compat run (in-process Spark 3.5): pyspark 3.5 and py4j\n'
        '  "ignore:distutils Version classes are deprecated:DeprecationWarning",\n'
        '  "ignore:unclosed <socket.socket:ResourceWarning",\n'
        '  "ignore:is_datetime64tz_dtype is deprecated:DeprecationWarning",\n',
        count=1,
    )

    # 5. Import the installed pyiceberg wheel, not the uncompiled source tree.
    (root / "pyiceberg").rename(root / "pyiceberg.sdist-source-unused")

    if args.verbose:
        print("\n".join(a.log))
    print(f"adapt_pyiceberg: {len(a.log)} edits in {root}")


if __name__ == "__main__":
    main()
