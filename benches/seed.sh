#!/usr/bin/env bash
# Fill a Serac PostgreSQL database with many namespaces and tables, fast: straight SQL
# (generate_series) into Serac's own tables, no HTTP.
#
#   ./benches/seed.sh --database-url postgres://USER@HOST:PORT/DB \
#       [--namespaces 100000] [--tables 1000000] [--list-tables 1000] \
#       [--warehouse default] [--warehouse-location file:///path/warehouse] [--serac PATH]
#
# 1. `serac migrate` creates or updates the schema;
# 2. the warehouse (--warehouse, default `default`) must exist, or is created with
#    `serac warehouse create` at --warehouse-location (give the location `serac serve`
#    would use: file://<absolute data dir>/warehouse unless --warehouse-location is set);
# 3. in one transaction: namespaces seed_0..seed_<N-1> (zero-padded), and tables
#    t_0.. spread round-robin over them (table k lies in namespace k mod N); plus the
#    namespace seed_list holding --list-tables tables (for the bench's list-tables
#    scenario; 0: none);
# 4. VACUUM ANALYZE of namespaces and tables, so that the planner knows their size.
#
# Every table is a real table to Serac: its row holds a valid format-version 2 metadata
# document (3 columns, no snapshot; its own table-uuid and location below the warehouse,
# laid out as Serac lays out new tables) and claims its location. Serac serves loads from
# the row, so no metadata file is written; a commit writes the table's next metadata file
# as usual (the directory is created then).
#
# Prints progress on stderr and, last on stdout, one line:
#   seeded namespaces=N tables=T list_tables=L insert_s=S analyze_s=S db_bytes=B
#
# Needs psql (PSQL=/path/to/psql to choose one) and the serac binary (--serac, default
# $CARGO_TARGET_DIR/release/serac, else `serac` on PATH). Fails if the warehouse already
# has namespaces named seed_*.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

DB_URL=""
NAMESPACES=100000
TABLES=1000000
LIST_TABLES=1000
WAREHOUSE=default
WAREHOUSE_LOCATION=""
SERAC="${CARGO_TARGET_DIR:-$HOME/.cache/serac/target}/release/serac"
while [ $# -gt 0 ]; do
    case "$1" in
        --database-url) DB_URL="$2"; shift ;;
        --namespaces) NAMESPACES="$2"; shift ;;
        --tables) TABLES="$2"; shift ;;
        --list-tables) LIST_TABLES="$2"; shift ;;
        --warehouse) WAREHOUSE="$2"; shift ;;
        --warehouse-location) WAREHOUSE_LOCATION="$2"; shift ;;
        --serac) SERAC="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "seed.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

log() { printf '[seed] %s\n' "$*" >&2; }
die() { printf 'seed.sh: %s\n' "$*" >&2; exit 1; }

[ -n "$DB_URL" ] || die "--database-url is required"
case "$DB_URL" in postgres://*|postgresql://*) ;; *) die "--database-url must be a PostgreSQL URL" ;; esac
for n in "$NAMESPACES" "$TABLES" "$LIST_TABLES"; do
    [[ "$n" =~ ^[0-9]+$ ]] || die "counts must be non-negative integers (got '$n')"
done
[ "$NAMESPACES" -gt 0 ] || [ "$TABLES" -eq 0 ] || die "--tables needs --namespaces > 0"
[ -x "$SERAC" ] || SERAC="$(command -v serac || true)"
[ -n "$SERAC" ] || die "serac binary not found (build it: cargo build --release; or pass --serac)"
PSQL="${PSQL:-$(command -v psql || ls /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -n 1)}"
[ -n "$PSQL" ] && [ -x "$PSQL" ] || die "psql not found (set PSQL=/path/to/psql)"

psql_q() { "$PSQL" "$DB_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }
now() { date +%s.%N; }
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

log "serac migrate"
"$SERAC" migrate --database-url "$DB_URL" >&2

wh_row() { psql_q -F ' ' -v name="$WAREHOUSE" <<<"SELECT id, location FROM warehouses WHERE name = :'name'"; }
row="$(wh_row)"
if [ -z "$row" ]; then
    [ -n "$WAREHOUSE_LOCATION" ] || die "warehouse '$WAREHOUSE' does not exist: pass --warehouse-location"
    log "creating warehouse '$WAREHOUSE' at $WAREHOUSE_LOCATION"
    "$SERAC" warehouse create "$WAREHOUSE" --location "$WAREHOUSE_LOCATION" --database-url "$DB_URL" >&2
    row="$(wh_row)"
fi
WH_ID="${row%% *}"
ROOT="${row#* }"
ROOT="${ROOT%/}"
case "$ROOT" in *'"'*|*\\*) die "the warehouse location $ROOT holds a quote or backslash" ;; esac
taken="$(psql_q -v wh="$WH_ID" <<<"SELECT count(*) FROM namespaces WHERE warehouse_id = :'wh' AND name LIKE 'seed\_%'")"
[ "$taken" = 0 ] || die "warehouse '$WAREHOUSE' already has $taken namespace(s) named seed_*"

width() { local n=$(($1 > 0 ? $1 - 1 : 0)); echo "${#n}"; }
NS_WIDTH="$(width "$NAMESPACES")"
PER_NS=$(((TABLES + NAMESPACES - 1) / (NAMESPACES > 0 ? NAMESPACES : 1)))
T_WIDTH="$(width "$PER_NS")"
L_WIDTH="$(width "$LIST_TABLES")"
NOW_MS="$(date +%s%3N)"
# Serac's own document for a new table of this shape (keys sorted as Serac writes them);
# format() puts in the location, then the table-uuid.
TEMPLATE='{"current-schema-id":0,"default-sort-order-id":0,"default-spec-id":0,"format-version":2,"last-column-id":3,"last-partition-id":999,"last-sequence-number":0,"last-updated-ms":'"$NOW_MS"',"location":"%s","partition-specs":[{"fields":[],"spec-id":0}],"refs":{},"schemas":[{"fields":[{"id":1,"name":"id","required":true,"type":"long"},{"id":2,"name":"data","required":false,"type":"string"},{"id":3,"name":"ts","required":false,"type":"timestamptz"}],"schema-id":0,"type":"struct"}],"sort-orders":[{"fields":[],"order-id":0}],"table-uuid":"%s"}'

log "inserting $NAMESPACES namespaces and $TABLES tables (+ seed_list with $LIST_TABLES) into warehouse '$WAREHOUSE' ($ROOT)"
t0="$(now)"
psql_q -v wh="$WH_ID" -v root="$ROOT" -v template="$TEMPLATE" -v now="$NOW_MS" \
    -v nns="$NAMESPACES" -v nt="$TABLES" -v nl="$LIST_TABLES" \
    -v nsw="$NS_WIDTH" -v tw="$T_WIDTH" -v lw="$L_WIDTH" <<'SQL'
-- A bulk load: a lost tail after a crash would only mean seeding again.
SET synchronous_commit = off;
BEGIN;
INSERT INTO namespaces (id, warehouse_id, parent_id, name, parent, properties, version,
                        created_at_ms, updated_at_ms)
SELECT gen_random_uuid()::text, :'wh', NULL, 'seed_' || lpad(i::text, :nsw, '0'), '', '{}', 0,
       :now, :now
FROM generate_series(0, :nns - 1) AS i
UNION ALL
SELECT gen_random_uuid()::text, :'wh', NULL, 'seed_list', '', '{}', 0, :now, :now
WHERE :nl > 0;

-- One row per table: namespace, name and a location unique to it (<root>/<ns>/<name>-<hex>).
CREATE TEMP TABLE seed_rows ON COMMIT DROP AS
SELECT ns, name,
       :'root' || '/' || ns || '/' || name || '-' || replace(gen_random_uuid()::text, '-', '') AS loc
FROM (
    SELECT k, 'seed_' || lpad((k % :nns)::text, :nsw, '0') AS ns,
           't_' || lpad((k / :nns)::text, :tw, '0') AS name
    FROM generate_series(0, :nt - 1) AS k
    UNION ALL
    SELECT :nt + k, 'seed_list', 't_' || lpad(k::text, :lw, '0')
    FROM generate_series(0, :nl - 1) AS k
    ORDER BY 1
) AS g;

INSERT INTO tables (id, namespace_id, name, metadata_location, metadata, created_at_ms,
                    updated_at_ms, kind, location)
SELECT gen_random_uuid()::text, n.id, r.name,
       r.loc || '/metadata/00000-' || gen_random_uuid() || '.metadata.json',
       format(:'template', r.loc, gen_random_uuid()), :now, :now, 'table', r.loc
FROM seed_rows AS r
JOIN namespaces AS n ON n.warehouse_id = :'wh' AND n.name = r.ns;
COMMIT;
SQL
t1="$(now)"
log "inserted in $(seconds "$t0" "$t1") s; VACUUM ANALYZE"
psql_q -c "VACUUM (ANALYZE) namespaces, tables"
t2="$(now)"
DB_BYTES="$(psql_q -c "SELECT pg_database_size(current_database())")"
counts="$(psql_q -F ' ' -v wh="$WH_ID" <<<"SELECT (SELECT count(*) FROM namespaces WHERE warehouse_id = :'wh'), (SELECT count(*) FROM tables t JOIN namespaces n ON n.id = t.namespace_id WHERE n.warehouse_id = :'wh')")"
log "analyzed in $(seconds "$t1" "$t2") s; warehouse '$WAREHOUSE' now holds ${counts% *} namespaces, ${counts#* } tables; database $((DB_BYTES / 1048576)) MiB"
echo "seeded namespaces=$NAMESPACES tables=$TABLES list_tables=$LIST_TABLES insert_s=$(seconds "$t0" "$t1") analyze_s=$(seconds "$t1" "$t2") db_bytes=$DB_BYTES"
