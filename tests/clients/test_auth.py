"""The clients' own OAuth2 flows against a Serac with authentication on (`--auth oauth2`).

tests/run.sh starts that second server and sets SERAC_AUTH_URI and SERAC_AUTH_CREDENTIAL
(the bootstrap admin's `client_id:client_secret`):

* PyIceberg with `credential=` (its client credentials flow against /v1/oauth/tokens) creates,
  writes and reads a table; the same with a static `token=`; without credentials, a wrong
  secret, or a broken token it is refused with the right error;
* DuckDB ATTACHes with CLIENT_ID / CLIENT_SECRET and reads what PyIceberg wrote.
"""

from __future__ import annotations

import os
import uuid

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
