#!/usr/bin/env bash
# Prepares everything Serac's Spark tests (tests/clients/test_spark.py) need,
# from package registries only, and caches it so reruns take a second:
#
#   * Java 17 (Debian's openjdk-17-jdk-headless; Spark 3.5 does not run on newer JDKs)
#   * pyspark 3.5.x (PyPI) in the Python that runs the tests
#   * Iceberg's Spark 3.5 runtime + SQL extensions jars, 1.10.2 (Scala 2.12), taken
#     from the PyPI package snowpark-connect-deps-iceberg
#   * iceberg-shaded-deps.jar: the runtime jar refers to relocated Jackson
#     (org.apache.iceberg.shaded.com.fasterxml.jackson.*) and Apache HttpClient 5
#     (org.apache.iceberg.shaded.org.apache.hc.*) classes that this build of it
#     does not contain. We rebuild them: Jackson 2.18 jars from the PyPI package
#     snowpark-connect-deps-2, httpclient5/httpcore5 from Debian, relocated with
#     Debian's jarjar. Debian's httpclient5 (5.2) lacks the 5.4 interface
#     TlsSocketStrategy that Iceberg's HTTPClient names (used only with a custom
#     TLS configurer), so an empty stub of it is compiled in.
#
# Usage: tests/clients/spark_setup.sh
#
# On success it writes "$SERAC_SPARK_CACHE/spark-env.sh" (KEY=VALUE lines:
# JAVA_HOME, SERAC_SPARK_JARS = comma-separated jar paths) and prints the same
# lines on stdout. Progress and errors go to stderr. Exit status non-zero on failure.
#
# Environment knobs (all optional):
#   SERAC_SPARK_CACHE  cache dir            (default: $HOME/.cache/serac/spark)
#   SERAC_PYTHON       Python to get pyspark (default: $SERAC_VENV/bin/python)
#   SERAC_VENV         venv used when SERAC_PYTHON is unset (default: $HOME/.cache/serac/venv;
#                      created if missing)
set -euo pipefail

CACHE="${SERAC_SPARK_CACHE:-$HOME/.cache/serac/spark}"
VENV="${SERAC_VENV:-$HOME/.cache/serac/venv}"
PY="${SERAC_PYTHON:-$VENV/bin/python}"

PYSPARK_SPEC='pyspark>=3.5,<3.6'
ICEBERG_PKG='snowpark-connect-deps-iceberg==1.0.3'
ICEBERG_VERSION='1.10.2'
JACKSON_PKG='snowpark-connect-deps-2==3.56.7'
# Bump when the recipe below changes, so cached results are rebuilt.
RECIPE=3

RUNTIME_JAR="$CACHE/jars/iceberg-spark-runtime-3.5_2.12-$ICEBERG_VERSION.jar"
EXTENSIONS_JAR="$CACHE/jars/iceberg-spark-extensions-3.5_2.12-$ICEBERG_VERSION.jar"
SHADED_JAR="$CACHE/jars/iceberg-shaded-deps.jar"
STAMP="$CACHE/jars/.recipe-$RECIPE"
ENV_FILE="$CACHE/spark-env.sh"

log() { printf '[spark-setup] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi
APT_UPDATED=0
apt_install() { # apt_install PKG... (runs apt-get update once, first)
    command -v apt-get >/dev/null 2>&1 || die "apt-get not available; install $* by hand"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq </dev/null >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" \
        </dev/null >"$CACHE/apt.log" 2>&1; then
        cat "$CACHE/apt.log" >&2
        die "apt-get install $* failed"
    fi
}

mkdir -p "$CACHE/jars"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi

# ------------------------------------------------------------------- Java 17
find_java17() {
    local d
    for d in "${SERAC_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-* /usr/lib/jvm/*17*; do
        if [ -n "$d" ] && [ -x "$d/bin/java" ] && [ -x "$d/bin/javac" ] &&
            "$d/bin/java" -version 2>&1 | grep -q 'version "17\.'; then
            echo "$d"
            return 0
        fi
    done
    return 1
}
JAVA_HOME_17="$(find_java17 || true)"
if [ -z "$JAVA_HOME_17" ]; then
    apt_install openjdk-17-jdk-headless
    JAVA_HOME_17="$(find_java17)" || die "no JDK 17 found after installing openjdk-17-jdk-headless"
fi
JAVA="$JAVA_HOME_17/bin/java"

# ------------------------------------------------------------------- pyspark
if [ ! -x "$PY" ]; then
    [ -z "${SERAC_PYTHON:-}" ] || die "SERAC_PYTHON=$PY is not executable"
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "python3 -m venv failed"
fi
pyspark_ok() {
    "$PY" -c 'import sys, pyspark; sys.exit(0 if pyspark.__version__.startswith("3.5.") else 1)' >/dev/null 2>&1
}
if ! pyspark_ok; then
    log "pip install '$PYSPARK_SPEC' into $("$PY" -c 'import sys; print(sys.prefix)')"
    "$PY" -m pip install -q --disable-pip-version-check "$PYSPARK_SPEC" </dev/null >&2 ||
        die "pip install $PYSPARK_SPEC failed"
    pyspark_ok || die "pyspark 3.5 still not importable"
fi

# ------------------------------------------------------------------ the jars
if [ -f "$STAMP" ] && [ -s "$RUNTIME_JAR" ] && [ -s "$EXTENSIONS_JAR" ] && [ -s "$SHADED_JAR" ]; then
    : # cached
else
    rm -f "$CACHE"/jars/.recipe-*
    for tool in unzip; do
        command -v "$tool" >/dev/null 2>&1 || apt_install "$tool"
    done
    BUILD="$(mktemp -d "${TMPDIR:-/tmp}/serac-spark-setup.XXXXXX")"
    trap 'rm -rf "$BUILD"' EXIT

    # Iceberg runtime + extensions (PyPI)
    log "pip download $ICEBERG_PKG"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$BUILD/whl-iceberg" "$ICEBERG_PKG" </dev/null >&2 ||
        die "pip download $ICEBERG_PKG failed"
    unzip -q -o -j "$BUILD"/whl-iceberg/*.whl \
        "*/jars/iceberg-spark-runtime-3.5_2.12-$ICEBERG_VERSION.jar" \
        "*/jars/iceberg-spark-extensions-3.5_2.12-$ICEBERG_VERSION.jar" -d "$BUILD/iceberg" ||
        die "the $ICEBERG_PKG wheel has no Iceberg $ICEBERG_VERSION Spark 3.5 / Scala 2.12 jars"

    # Jackson 2.18 (PyPI)
    log "pip download $JACKSON_PKG"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$BUILD/whl-deps2" "$JACKSON_PKG" </dev/null >&2 ||
        die "pip download $JACKSON_PKG failed"
    unzip -q -o -j "$BUILD"/whl-deps2/*.whl '*/jars/jackson-core-2.*.jar' '*/jars/jackson-databind-2.*.jar' \
        '*/jars/jackson-annotations-2.*.jar' -d "$BUILD/jackson" || die "no Jackson jars in the $JACKSON_PKG wheel"

    # HttpClient 5 + jarjar (Debian)
    HC_JARS=(/usr/share/java/httpclient5.jar /usr/share/java/httpcore5.jar /usr/share/java/httpcore5-h2.jar)
    JARJAR=/usr/share/java/jarjar.jar
    need=()
    [ -f /usr/share/java/httpclient5.jar ] || need+=(libhttpclient5-java)
    [ -f /usr/share/java/httpcore5.jar ] && [ -f /usr/share/java/httpcore5-h2.jar ] || need+=(libhttpcore5-java)
    [ -f "$JARJAR" ] || need+=(libjarjar-java)
    if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi

    # Merge, add the stub, relocate.
    log "building $(basename "$SHADED_JAR")"
    mkdir -p "$BUILD/merge" "$BUILD/stub/org/apache/hc/client5/http/ssl"
    for j in "${HC_JARS[@]}" "$BUILD"/jackson/*.jar; do
        # META-INF holds manifests, signatures, multi-release variants and module-info.
        unzip -q -o "$j" -x 'META-INF/*' -d "$BUILD/merge"
    done
    rm -f "$BUILD/merge/module-info.class"
    cat >"$BUILD/stub/org/apache/hc/client5/http/ssl/TlsSocketStrategy.java" <<'EOF'
package org.apache.hc.client5.http.ssl;

/** Stub of the httpclient5 5.4 interface named by Iceberg's HTTPClient (TLS configurer path only). */
public interface TlsSocketStrategy {}
EOF
    "$JAVA_HOME_17/bin/javac" -nowarn --release 8 -d "$BUILD/merge" \
        "$BUILD/stub/org/apache/hc/client5/http/ssl/TlsSocketStrategy.java" 2>/dev/null ||
        "$JAVA_HOME_17/bin/javac" --release 8 -d "$BUILD/merge" \
            "$BUILD/stub/org/apache/hc/client5/http/ssl/TlsSocketStrategy.java" >&2 ||
        die "javac of the TlsSocketStrategy stub failed"
    (cd "$BUILD/merge" && "$JAVA_HOME_17/bin/jar" cf "$BUILD/merged.jar" .) || die "jar cf failed"
    cat >"$BUILD/rules.txt" <<'EOF'
rule com.fasterxml.jackson.** org.apache.iceberg.shaded.com.fasterxml.jackson.@1
rule org.apache.hc.** org.apache.iceberg.shaded.org.apache.hc.@1
EOF
    "$JAVA" -jar "$JARJAR" process "$BUILD/rules.txt" "$BUILD/merged.jar" "$BUILD/shaded.jar" >&2 ||
        die "jarjar failed"

    # Sanity: every relocated class the runtime jar names must now exist
    # (JavaTimeModule is named only by Arrow's ObjectMapperFactory, unused here).
    "$PY" - "$BUILD/iceberg/iceberg-spark-runtime-3.5_2.12-$ICEBERG_VERSION.jar" "$BUILD/shaded.jar" <<'EOF' ||
import re, sys, zipfile
runtime, shaded = zipfile.ZipFile(sys.argv[1]), zipfile.ZipFile(sys.argv[2])
have = set(shaded.namelist()) | set(runtime.namelist())
pat = re.compile(rb"org/apache/iceberg/shaded/(?:org/apache/hc|com/fasterxml/jackson)/[A-Za-z0-9_/$]+")
missing = set()
for name in runtime.namelist():
    if name.endswith(".class"):
        for m in pat.findall(runtime.read(name)):
            cls = m.decode().split("$")[0]
            if cls.rsplit("/", 1)[-1][:1].isupper() and cls + ".class" not in have:
                missing.add(cls)
missing.discard("org/apache/iceberg/shaded/com/fasterxml/jackson/datatype/jsr310/JavaTimeModule")
if missing:
    sys.exit("still missing: " + ", ".join(sorted(missing)))
EOF
        die "the relocated jar does not cover the runtime jar's references"

    mv -f "$BUILD/iceberg/iceberg-spark-runtime-3.5_2.12-$ICEBERG_VERSION.jar" "$RUNTIME_JAR"
    mv -f "$BUILD/iceberg/iceberg-spark-extensions-3.5_2.12-$ICEBERG_VERSION.jar" "$EXTENSIONS_JAR"
    mv -f "$BUILD/shaded.jar" "$SHADED_JAR"
    touch "$STAMP"
    rm -rf "$BUILD"
    trap - EXIT
fi

{
    echo "JAVA_HOME=$JAVA_HOME_17"
    echo "SERAC_SPARK_JARS=$RUNTIME_JAR,$EXTENSIONS_JAR,$SHADED_JAR"
} >"$ENV_FILE.tmp"
mv -f "$ENV_FILE.tmp" "$ENV_FILE"
cat "$ENV_FILE"
log "ready ($(du -sh "$CACHE/jars" | cut -f1) of jars in $CACHE/jars)"
