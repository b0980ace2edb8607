"""A real Prometheus scrapes a real Serac on loopback while traffic runs; every series the alert
rules and the Grafana dashboard select, and every dashboard query, must return data through
Prometheus's HTTP API, Prometheus must evaluate every rule without error, and the dashboard
may name only metrics Serac exports.

Run by tests/deploy/run.sh, which provides the binaries and a PostgreSQL database:
    scrape_test.py --serac BIN --prometheus BIN --database-url URL --work DIR
The PostgreSQL outage (for the 5xx and database-down series) pauses and resumes the cluster
with tests/lib/pg.sh, which needs _SERAC_PG_TMP and SERAC_PG_BINDIR in the environment.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

ROOT = promql.ROOT
DEADLINE_SECONDS = 90


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None):
    """(status, parsed JSON or text); status 0 when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_for(what, check, seconds=60):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.25)
    print(f"  gave up waiting for {what}", file=sys.stderr)
    return False


def pg(action):
    subprocess.run(
        ["bash", "-c", f'. "{ROOT}/tests/lib/pg.sh" && serac_pg_{action}'], check=True
    )


class Prometheus:
    def __init__(self, base):
        self.base = base

    def query(self, expr):
        """(result list, error or None)."""
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        status, body = http("GET", url)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            return [], f"HTTP {status}: {body}"
        return body["data"]["result"], None


def drive_traffic(serac, rounds):
    schema = {
        "type": "struct",
        "schema-id": 0,
        "fields": [{"id": 1, "name": "id", "required": True, "type": "long"}],
    }
    http("POST", f"{serac}/v1/namespaces", {"namespace": ["deploy"]})
    for t in range(3):
        http("POST", f"{serac}/v1/namespaces/deploy/tables", {"name": f"t{t}", "schema": schema})
    statuses = []
    for i in range(rounds):
        for t in range(3):
            table = f"{serac}/v1/namespaces/deploy/tables/t{t}"
            status, loaded = http("GET", table)
            statuses.append(status)
            uuid = loaded["metadata"]["table-uuid"] if status == 200 else "none"
            status, _ = http("POST", table, {
                "requirements": [{"type": "assert-table-uuid", "uuid": uuid}],
                "updates": [{"action": "set-properties", "updates": {"round": str(i)}}],
            })
            statuses.append(status)
        # A stale writer: its requirement does not hold (409, a commit conflict).
        status, _ = http("POST", f"{serac}/v1/namespaces/deploy/tables/t0", {
            "requirements": [{"type": "assert-ref-snapshot-id", "ref": "main", "snapshot-id": 1}],
            "updates": [{"action": "set-properties", "updates": {"stale": "yes"}}],
        })
        statuses.append(status)
        statuses.append(http("GET", f"{serac}/v1/namespaces/deploy/tables/missing")[0])
        statuses.append(http("GET", f"{serac}/v1/config")[0])
    return statuses


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serac", required=True)
    parser.add_argument("--prometheus", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    results = []

    def check(name, ok, detail=""):
        results.append(ok)
        print(f"  {'ok  ' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))

    serac_port, prom_port = free_port(), free_port()
    serac = f"http://127.0.0.1:{serac_port}"
    prom = Prometheus(f"http://127.0.0.1:{prom_port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERAC_")}
    env.update({
        "SERAC_BIND": f"127.0.0.1:{serac_port}",
        "SERAC_DATA_DIR": str(work / "serac-data"),
        "SERAC_DATABASE_URL": args.database_url,
        "SERAC_LOG_FORMAT": "json",
        "SERAC_ACCESS_LOG": "false",
    })
    rules = work / "serac-rules.yaml"
    rules.write_text(yaml.safe_dump(promql.rule_groups()))
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": "serac",
            "static_configs": [{"targets": [f"127.0.0.1:{serac_port}"]}],
        }],
    }))
    procs = []
    serac_log = open(work / "serac.log", "w")
    prom_log = open(work / "prometheus.log", "w")
    try:
        procs.append(subprocess.Popen([args.serac, "serve"], env=env, stdout=serac_log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        procs.append(subprocess.Popen([
            args.prometheus, f"--config.file={config}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ], stdout=prom_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        check("serac is ready", wait_for("serac /ready", lambda: http("GET", f"{serac}/ready")[0] == 200))
        check("prometheus is ready", wait_for(
            "prometheus", lambda: http("GET", f"{prom.base}/-/ready")[0] == 200))
        check("prometheus scrapes serac", wait_for(
            "target up", lambda: prom.query('up{job="serac"} == 1')[0] != []))

        statuses = drive_traffic(serac, rounds=5)
        check("traffic before the outage answered", 0 not in statuses and 500 not in statuses,
              str(sorted(set(statuses))))

        # A database outage: 503s and serac_database_up 0, seen by a scrape.
        pg("pause")
        try:
            outage = [http("GET", f"{serac}/v1/namespaces/deploy/tables/t1")[0] for _ in range(5)]
            check("requests during the outage answer 503", set(outage) == {503}, str(outage))
            check("prometheus saw serac_database_up 0", wait_for(
                "serac_database_up == 0",
                lambda: prom.query('serac_database_up{job="serac"} == 0')[0] != []))
        finally:
            pg("resume")
        check("serac is ready after the outage", wait_for(
            "serac /ready", lambda: http("GET", f"{serac}/ready")[0] == 200))
        statuses = drive_traffic(serac, rounds=5)
        check("traffic after the outage answered", 0 not in statuses and 503 not in statuses,
              str(sorted(set(statuses))))

        # Every selector and every dashboard query returns data (rates need two scrapes
        # after the traffic: wait for them, then judge).
        alert_selectors = {s for r in promql.alert_rules() for s in promql.selectors(r["expr"])}
        queries = promql.dashboard_queries()
        board_selectors = {s for _, e in queries for s in promql.selectors(e)}
        wanted = sorted(alert_selectors | board_selectors) + [e for _, e in queries]
        wait_for("every query to return data",
                 lambda: all(prom.query(q)[0] for q in wanted), DEADLINE_SECONDS)
        for selector in sorted(alert_selectors | board_selectors):
            found, error = prom.query(selector)
            check(f"series {selector}", bool(found) and error is None, error or "no series")
        for title, expr in queries:
            found, error = prom.query(expr)
            check(f"dashboard '{title}': {expr}", bool(found) and error is None, error or "no data")
        for rule in promql.alert_rules():
            _, error = prom.query(rule["expr"])
            check(f"alert {rule['alert']} evaluates", error is None, error or "")

        # Prometheus loaded and evaluated every rule.
        status, body = http("GET", f"{prom.base}/api/v1/rules")
        loaded = [r for g in body["data"]["groups"] for r in g["rules"]] if status == 200 else []
        names = {r["name"] for r in loaded}
        check("prometheus loaded every alert",
              names == {r["alert"] for r in promql.alert_rules()}, str(names))
        for r in loaded:
            check(f"rule {r['name']} health", r.get("health") == "ok", r.get("lastError", ""))

        # The dashboard names only metrics Serac exports.
        status, text = http("GET", f"{serac}/metrics")
        exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        series_names = set()
        for name in exported:
            series_names |= {name, f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        for name in sorted({promql.metric_name(s) for s in board_selectors}):
            check(f"dashboard metric {name} is exported", name in series_names)
        for name in sorted({promql.metric_name(s) for s in alert_selectors} - {"up"}):
            check(f"alert metric {name} is exported", name in series_names)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        serac_log.close()
        prom_log.close()

    passed = sum(results)
    failed = len(results) - passed
    print(f"scrape test: {passed} checks passed, {failed} failed")
    if failed:
        for name in ("serac.log", "prometheus.log"):
            print(f"----- last lines of {name} -----")
            print("\n".join((work / name).read_text().splitlines()[-30:]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
