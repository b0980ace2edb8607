"""Contract tests: the live server against the project's own OpenAPI document.

Run against a live server:

    SERAC_URI=http://127.0.0.1:8181 pytest -q tests/clients/test_contract.py

* `test_contract` runs the schemathesis CLI (seeded, bounded, one worker) over every
  operation in `openapi/serac.yaml` and checks each response: no 5xx, a documented status
  code, a documented content type, a body that matches the documented schema, and no
  schema-violating request accepted. The `prefix` is pinned to the default warehouse and
  some operations to a fixture namespace and table, role and principal; the namespaces the
  run creates are dropped after.
* `test_config_endpoints_match_document` compares the `endpoints` that `GET /v1/config`
  advertises with the catalog operations of the document.
* `test_unserved_operations` prints the operations of the upstream Iceberg REST spec
  (`../shared/iceberg/rest-catalog-open-api.yaml`) that `openapi/serac.yaml` lacks, and
  checks that every `/v1/` operation of the document exists upstream.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

SERAC_URI = os.environ.get("SERAC_URI")

pytestmark = pytest.mark.skipif(
    not SERAC_URI, reason="SERAC_URI is not set (tests/run.sh starts a server and sets it)"
)

ROOT = Path(__file__).resolve().parents[2]
SERAC_DOC = ROOT / "openapi" / "serac.yaml"
UPSTREAM_DOC = ROOT.parent / "shared" / "iceberg" / "rest-catalog-open-api.yaml"

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Routes of Serac's own, outside the Iceberg REST spec.
# Routes outside the upstream spec: Serac's own, and the legacy S3 signing path that the
# Java and Python signer clients call by default (the spec only has the per-table `/sign`).
SERAC_ONLY_PREFIXES = ("/management/", "/health", "/ready", "/metrics", "/v1/events/", "/v1/aws/s3/sign")

PREFIX = "default"
NAMESPACE = "contract"
TABLE = "t1"
ROLE = "contract-role"
PRINCIPAL = "contract-principal"
SEED = 20240601
MAX_EXAMPLES = 25
STATEFUL_EXAMPLES = 40
TIMEOUT = 150  # seconds; a safety net, the bounded run takes well under a minute
TABLE_SCHEMA = {
    "type": "struct",
    "schema-id": 0,
    "fields": [
        {"id": 1, "name": "id", "type": "long", "required": True},
        {"id": 2, "name": "data", "type": "string", "required": False},
    ],
}


# ----------------------------------------------------------------- helpers


def _load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _operations(doc: dict) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation in an OpenAPI document."""
    ops = set()
    for path, item in (doc.get("paths") or {}).items():
        for method in HTTP_METHODS:
            if isinstance(item, dict) and method in item:
                ops.add((method.upper(), path))
    return ops


def _normalise(path: str) -> str:
    """Paths under `/v1/{prefix}` and `/v1` name the same catalog route."""
    if path.startswith("/v1/{prefix}/"):
        return "/v1/" + path[len("/v1/{prefix}/") :]
    return path


def _url(path: str) -> str:
    return SERAC_URI.rstrip("/") + path


def _enc(levels: list[str] | tuple[str, ...]) -> str:
    return requests.utils.quote("\x1f".join(levels), safe="")


def _all_namespaces() -> set[tuple[str, ...]]:
    """Every namespace of the default warehouse, at any depth."""
    found: set[tuple[str, ...]] = set()
    todo: list[tuple[str, ...] | None] = [None]
    while todo:
        parent = todo.pop()
        token = None
        while True:
            params = {}
            if parent is not None:
                params["parent"] = "\x1f".join(parent)
            if token:
                params["pageToken"] = token
            r = requests.get(_url(f"/v1/{PREFIX}/namespaces"), params=params, timeout=30)
            if r.status_code == 404 and parent is not None:
                break
            r.raise_for_status()
            body = r.json()
            for ns in body["namespaces"]:
                ns = tuple(ns)
                if ns not in found:
                    found.add(ns)
                    todo.append(ns)
            token = body.get("next-page-token")
            if not token:
                break
    return found


def _drop_namespace_with_tables(ns: tuple[str, ...]) -> list[str]:
    """Drops a namespace and its tables; returns what could not be dropped."""
    problems = []
    base = _url(f"/v1/{PREFIX}/namespaces/{_enc(ns)}")
    token = None
    while True:
        r = requests.get(base + "/tables", params={"pageToken": token} if token else {}, timeout=30)
        if r.status_code != 200:
            break
        body = r.json()
        for ident in body["identifiers"]:
            name = requests.utils.quote(ident["name"], safe="")
            d = requests.delete(f"{base}/tables/{name}", timeout=30)
            if d.status_code != 204:
                problems.append(f"DROP TABLE {ns}.{ident['name']!r}: {d.status_code} {d.text}")
        token = body.get("next-page-token")
        if not token:
            break
    d = requests.delete(base, timeout=30)
    if d.status_code not in (204, 404):
        problems.append(f"DROP NAMESPACE {ns}: {d.status_code} {d.text}")
    return problems


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fixtures_on_server():
    """A namespace, a table, a role and a principal that generated requests for existing
    objects can reach.

    Everything the run creates in the default warehouse is dropped afterwards, so later
    tests against the same server see no generated namespaces.
    """
    before = _all_namespaces()
    r = requests.post(
        _url(f"/v1/{PREFIX}/namespaces"),
        json={"namespace": [NAMESPACE], "properties": {"owner": "contract"}},
        timeout=30,
    )
    assert r.status_code in (200, 409), r.text
    r = requests.post(
        _url(f"/v1/{PREFIX}/namespaces/{NAMESPACE}/tables"),
        json={"name": TABLE, "schema": TABLE_SCHEMA},
        timeout=30,
    )
    assert r.status_code in (200, 409), r.text
    r = requests.post(_url("/management/v1/roles"), json={"name": ROLE}, timeout=30)
    assert r.status_code in (201, 409), r.text
    r = requests.post(_url("/management/v1/principals"), json={"name": PRINCIPAL}, timeout=30)
    assert r.status_code in (201, 409), r.text
    yield
    created = sorted(_all_namespaces() - (before - {(NAMESPACE,)}), key=len, reverse=True)
    problems = []
    for ns in created:
        problems += _drop_namespace_with_tables(ns)
    assert problems == [], "could not clean up what the contract run created:\n" + "\n".join(problems)


# ---------------------------------------------------------------- contract

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
# Operations whose generated requests should reach the fixture namespace / table.
ON_NAMESPACE = (
    "loadNamespaceMetadata",
    "namespaceExists",
    "updateProperties",
    "listTables",
    "createTable",
    "registerTable",
)
ON_TABLE = ("loadTable", "tableExists", "updateTable", "reportMetrics")
# Access operations whose generated requests should reach the fixture role / principal
# (those that would delete them are left to generated names).
ON_ROLE_AND_MEMBER = ("addRoleMember", "removeRoleMember")
ON_ROLE = ("listRoleGrants", "grantToRole", "revokeFromRole")
ON_PRINCIPAL = ("rotatePrincipalSecret", "createApiKey")


def _toml_list(items) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _schemathesis_config() -> str:
    """schemathesis.toml for one bounded, reproducible run against SERAC_URI."""
    checks = "\n".join(f"{name}.enabled = true" for name in CHECKS)
    return f"""\
seed = {SEED}
base-url = {json.dumps(SERAC_URI.rstrip("/"))}
workers = 1
request-timeout = 10
continue-on-failure = true

[output.sanitization]
enabled = false

[checks]
enabled = false
{checks}

[generation]
max-examples = {MAX_EXAMPLES}
database = "none"

[phases.stateful]
max-steps = 8

# The stateful phase follows links schemathesis infers itself; one of them copies the
# `namespace` array of a createNamespace answer into the `{{namespace}}` path segment as
# Python's list text, unescaped (a level holding `?` then ends the path early), so the
# request goes to another route and gets an honest 405. Status codes are checked in the
# other phases; this one still checks for 5xx, content types and schemas.
[phases.stateful.checks]
status_code_conformance.enabled = false

[phases.stateful.generation]
max-examples = {STATEFUL_EXAMPLES}

[parameters]
"path.prefix" = {json.dumps(PREFIX)}

[[operations]]
include-operation-id = {_toml_list(ON_NAMESPACE)}
parameters = {{ "path.namespace" = {json.dumps(NAMESPACE)} }}

[[operations]]
include-operation-id = {_toml_list(ON_TABLE)}
parameters = {{ "path.namespace" = {json.dumps(NAMESPACE)}, "path.table" = {json.dumps(TABLE)} }}

[[operations]]
include-operation-id = {_toml_list(ON_ROLE_AND_MEMBER)}
parameters = {{ "path.role" = {json.dumps(ROLE)}, "path.principal" = {json.dumps(PRINCIPAL)} }}

[[operations]]
include-operation-id = {_toml_list(ON_ROLE)}
parameters = {{ "path.role" = {json.dumps(ROLE)} }}

[[operations]]
include-operation-id = {_toml_list(ON_PRINCIPAL)}
parameters = {{ "path.name" = {json.dumps(PRINCIPAL)} }}
"""


def _failures(output: str) -> str:
    """The FAILURES section of a schemathesis report (each failing request with a curl
    command that reproduces it), or the whole output when there is none."""
    match = re.search(r"^=+ FAILURES =+$(.*?)^=+ (?:WARNINGS|SUMMARY) =+$", output, re.M | re.S)
    if not match:
        return output
    summary = output[output.rfind("Test cases:") :] if "Test cases:" in output else ""
    return match.group(1).strip() + "\n\n" + summary.strip()


def test_contract(fixtures_on_server, tmp_path, capsys):
    """Generated requests for every documented operation; responses must match the document.

    Any 5xx, undocumented status code or content type, body that does not match its schema,
    or invalid request that is accepted fails the test; the report names each failing
    request with a curl command that reproduces it.
    """
    config = tmp_path / "schemathesis.toml"
    config.write_text(_schemathesis_config(), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(config),
        "run",
        str(SERAC_DOC),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEMATHESIS_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as e:
        partial = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"schemathesis did not finish within {TIMEOUT}s (a hanging request?):\n{partial}")
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    summary = [line.strip() for line in output.splitlines() if " generated, " in line]
    with capsys.disabled():
        print(f"\nschemathesis: {'; '.join(summary) or 'no summary'} in {elapsed:.0f}s")
    assert proc.returncode == 0, f"schemathesis found contract violations:\n{_failures(output)}"
    assert summary, f"schemathesis ran no test cases:\n{output}"


# ------------------------------------------------------- document vs. server


def test_config_endpoints_match_document():
    """`GET /v1/config` advertises exactly the catalog operations the document describes."""
    r = requests.get(_url("/v1/config"), timeout=30)
    assert r.status_code == 200, r.text
    advertised = set()
    for endpoint in r.json()["endpoints"]:
        method, _, path = endpoint.partition(" ")
        advertised.add((method, path))
    documented = {(m, p) for m, p in _operations(_load_yaml(SERAC_DOC)) if p.startswith("/v1/{prefix}/")}
    undocumented = sorted(f"{m} {p}" for m, p in advertised - documented)
    unadvertised = sorted(f"{m} {p}" for m, p in documented - advertised)
    assert undocumented == [], "advertised in /v1/config but missing from openapi/serac.yaml:\n  " + "\n  ".join(undocumented)
    assert unadvertised == [], "in openapi/serac.yaml but not advertised in /v1/config:\n  " + "\n  ".join(unadvertised)


def _shape(path: str) -> str:
    """A path with its parameter names erased, so `{plan-id}` and `{planId}` compare equal."""
    return re.sub(r"\{[^}]*\}", "{}", _normalise(path))


def test_unserved_operations(capsys):
    """Lists the upstream spec's operations that Serac does not serve (printed, not failed),
    and checks that every `/v1/` operation Serac documents exists upstream."""
    if not UPSTREAM_DOC.is_file():
        pytest.skip(f"upstream spec not found at {UPSTREAM_DOC}")
    upstream = {(m, _shape(p)): (m, p) for m, p in _operations(_load_yaml(UPSTREAM_DOC))}
    ours = {(m, _shape(p)): (m, p) for m, p in _operations(_load_yaml(SERAC_DOC))}

    advertised = set()
    r = requests.get(_url("/v1/config"), timeout=30)
    if r.status_code == 200:
        for endpoint in r.json().get("endpoints", []):
            method, _, path = endpoint.partition(" ")
            advertised.add((method, _shape(path)))

    unserved = sorted((p, m, key) for key, (m, p) in upstream.items() if key not in ours)
    lines = [f"upstream Iceberg REST operations missing from openapi/serac.yaml ({len(unserved)}):"]
    lines += [
        f"  {m:<6} {p}" + ("   (served: advertised by GET /v1/config)" if key in advertised else "")
        for p, m, key in unserved
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    not_upstream = sorted(
        f"{m} {p}"
        for key, (m, p) in ours.items()
        if p.startswith("/v1/") and key not in upstream and not p.startswith(SERAC_ONLY_PREFIXES)
    )
    assert not_upstream == [], f"Serac documents /v1/ operations the spec does not have: {not_upstream}"
    foreign = sorted(
        f"{m} {p}"
        for m, p in ours.values()
        if not p.startswith("/v1/") and not p.startswith(SERAC_ONLY_PREFIXES)
    )
    assert foreign == [], f"operations outside /v1/ that are not Serac's own routes: {foreign}"
