"""The clients' own OAuth2 flows against a Serac with authentication on (`--auth oauth2`).

tests/run.sh starts that second server and sets SERAC_AUTH_URI and SERAC_AUTH_CREDENTIAL
(the bootstrap admin's `client_id:client_secret`):

* PyIceberg with `credential=` (its client credentials flow against /v1/oauth/tokens) creates,
  writes and reads a table; the same with a static `token=`; without credentials, a wrong
  secret, or a broken token it is refused with the right error;
* DuckDB ATTACHes with CLIENT_ID / CLIENT_SECRET and reads what PyIceberg wrote;
* bearer JWTs of the test OpenID Connect issuer (SERAC_AUTH_OIDC_ISSUER, signed here with the
  test-only keys of tests/fixtures/oidc through `openssl dgst`) work as PyIceberg's `token=` and
  DuckDB's TOKEN secret, name their external principal, and an expired one is refused.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import requests

AUTH_URI = os.environ.get("SERAC_AUTH_URI")
CREDENTIAL = os.environ.get("SERAC_AUTH_CREDENTIAL", "")

pytestmark = pytest.mark.skipif(
    not AUTH_URI, reason="SERAC_AUTH_URI is not set (tests/run.sh starts a server and sets it)"
)


def _catalog(**props):
    from pyiceberg.catalog import load_catalog

    return load_catalog("secured", **{"type": "rest", "uri": AUTH_URI, **props})


def _token() -> str:
    client_id, secret = CREDENTIAL.split(":", 1)
    r = requests.post(
        f"{AUTH_URI}/v1/oauth/tokens",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


OIDC_ISSUER = os.environ.get("SERAC_AUTH_OIDC_ISSUER")
OIDC_AUDIENCE = os.environ.get("SERAC_AUTH_OIDC_AUDIENCE")
OIDC_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "oidc"

needs_oidc = pytest.mark.skipif(
    not OIDC_ISSUER, reason="SERAC_AUTH_OIDC_ISSUER is not set (tests/run.sh sets it)"
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def oidc_token(name: str, lifetime: int = 300) -> str:
    """A token of the test issuer for `name` (its preferred_username), RS256 with key rsa-1."""
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "rsa-1"}
    claims = {
        "iss": OIDC_ISSUER,
        "aud": OIDC_AUDIENCE,
        "sub": f"subject-of-{name}",
        "preferred_username": name,
        "iat": now,
        "exp": now + lifetime,
    }
    signing_input = ".".join(_b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(OIDC_FIXTURES / "rsa1.pem")],
        input=signing_input.encode(),
        capture_output=True,
        check=True,
    ).stdout
    return f"{signing_input}.{_b64url(signature)}"


def external_admin() -> str:
    """A new external admin principal (made by the bootstrap admin); its name."""
    name = f"oidc-admin-{uuid.uuid4().hex[:8]}@example.com"
    r = requests.post(
        f"{AUTH_URI}/management/v1/principals",
        json={"name": name, "external": True, "admin": True},
        headers={"Authorization": f"Bearer {_token()}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    assert "client-secret" not in r.json()
    return name


def _table_with_ids(catalog, prefix: str, ids: list[int]) -> str:
    """A new namespace holding a table `t` with these ids; the namespace's name."""
    ns = f"{prefix}_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(ns)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    catalog.create_table(f"{ns}.t", schema=schema).append(pa.table({"id": ids}, schema=schema))
    return ns


@needs_oidc
def test_pyiceberg_with_a_provider_token():
    name = external_admin()
    catalog = _catalog(token=oidc_token(name))
    ns = _table_with_ids(catalog, "oidc", [1, 2])
    assert catalog.load_table(f"{ns}.t").scan().to_arrow()["id"].to_pylist() == [1, 2]
    # The audit log names the provider's identity.
    r = requests.get(
        f"{AUTH_URI}/management/v1/audit?limit=200",
        headers={"Authorization": f"Bearer {_token()}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert any(rec["actor"] == name for rec in r.json()["records"]), r.text


@needs_oidc
def test_pyiceberg_provider_tokens_are_checked():
    from pyiceberg.exceptions import ForbiddenError, UnauthorizedError

    # An identity seen for the first time: a principal with no grants.
    newcomer = _catalog(token=oidc_token(f"newcomer-{uuid.uuid4().hex[:8]}"))
    assert newcomer.list_namespaces() == []
    with pytest.raises(ForbiddenError):
        newcomer.create_namespace(f"oidc_no_{uuid.uuid4().hex[:8]}")
    # An expired token is refused at once with 401, not retried or answered with 500.
    started = time.monotonic()
    with pytest.raises(UnauthorizedError, match="expired"):
        _catalog(token=oidc_token(external_admin(), lifetime=-120)).list_namespaces()
    assert time.monotonic() - started < 10


@needs_oidc
def test_duckdb_with_a_provider_token():
    from test_duckdb import _duckdb

    name = external_admin()
    ns = _table_with_ids(_catalog(token=oidc_token(name)), "oidc_duck", [3, 4])

    con = _duckdb()
    con.execute(f"CREATE SECRET oidc_secret (TYPE iceberg, TOKEN '{oidc_token(name)}')")
    con.execute(
        f"ATTACH 'default' AS oidc (TYPE iceberg, ENDPOINT '{AUTH_URI}', SECRET oidc_secret)"
    )
    assert con.execute(f'SELECT id FROM oidc."{ns}".t ORDER BY id').fetchall() == [(3,), (4,)]


def test_pyiceberg_client_credentials_round_trip():
    catalog = _catalog(credential=CREDENTIAL)
    ns = f"auth_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(ns)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])
    table = catalog.create_table(f"{ns}.t", schema=schema)
    table.append(pa.table({"id": [1, 2], "v": ["a", "b"]}, schema=schema))
    # A second client with a static token sees the same rows.
    reader = _catalog(token=_token())
    rows = reader.load_table(f"{ns}.t").scan().to_arrow().sort_by("id").to_pylist()
    assert rows == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    assert (ns,) in {tuple(n) for n in reader.list_namespaces()}


def test_pyiceberg_without_valid_credentials_is_refused():
    from pyiceberg.exceptions import OAuthError, UnauthorizedError

    with pytest.raises(UnauthorizedError):
        _catalog().list_namespaces()
    client_id = CREDENTIAL.split(":", 1)[0]
    with pytest.raises(OAuthError, match="invalid_client"):
        _catalog(credential=f"{client_id}:wrong-secret")
    with pytest.raises(UnauthorizedError):
        _catalog(token=_token() + "x").list_namespaces()


def test_duckdb_attaches_with_client_credentials():
    from test_duckdb import _duckdb

    catalog = _catalog(credential=CREDENTIAL)
    ns = f"auth_duck_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(ns)
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    catalog.create_table(f"{ns}.t", schema=schema).append(pa.table({"id": [7, 8]}, schema=schema))

    client_id, secret = CREDENTIAL.split(":", 1)
    con = _duckdb()
    con.execute(
        f"ATTACH 'default' AS secured (TYPE iceberg, ENDPOINT '{AUTH_URI}', "
        f"CLIENT_ID '{client_id}', CLIENT_SECRET '{secret}', "
        f"OAUTH2_SERVER_URI '{AUTH_URI}/v1/oauth/tokens')"
    )
    rows = con.execute(f'SELECT id FROM secured."{ns}".t ORDER BY id').fetchall()
    assert rows == [(7,), (8,)]
    # Without credentials the same ATTACH is refused.
    con2 = _duckdb()
    with pytest.raises(Exception, match="(?i)401|unauthori|bearer"):
        con2.execute(
            f"ATTACH 'default' AS open_try (TYPE iceberg, ENDPOINT '{AUTH_URI}', AUTHORIZATION_TYPE 'none')"
        )
        con2.execute(f'SELECT * FROM open_try."{ns}".t').fetchall()
