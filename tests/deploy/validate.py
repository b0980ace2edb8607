"""Checks of the rendered manifests, the rules and the dashboard that need no server.

    validate.py schemas RENDERED.yaml...   built-in kinds against the Kubernetes schemas that
                                           the kubernetes-validate package ships (strict); the
                                           Prometheus Operator's kinds against the models of
                                           cloudcoil-models-prometheus-operator, with no field
                                           the models do not know
    validate.py rules OUT_DIR              writes serac-rules.yaml (the PrometheusRule's spec),
                                           rules.test.yaml and dashboard-rules.yaml (every
                                           dashboard query as a recording rule, for promtool)
    validate.py runbooks                   every alert's runbook annotation names a heading of
                                           deployments/README.md
"""

import re
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import promql  # noqa: E402

# Kinds of the Prometheus Operator: not in Kubernetes's own schemas.
OPERATOR_GROUP = "monitoring.coreos.com/"


def operator_resource(doc):
    """Validates a Prometheus Operator resource with the package's pydantic models (types,
    patterns such as durations); the models accept unknown fields, so a round trip that
    loses one counts as a failure."""
    import json

    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, doc["kind"], None)
    if model is None or doc["apiVersion"] != "monitoring.coreos.com/v1":
        raise ValueError(f"no model for {doc['apiVersion']} {doc['kind']}")
    back = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    canonical = lambda x: json.dumps(x, sort_keys=True, default=str)  # noqa: E731
    if canonical(back) != canonical(doc):
        raise ValueError("fields the model does not know (a typo?)")


def schemas(paths):
    import kubernetes_validate

    failures = 0
    checked = 0
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if not doc:
                continue
            name = f"{Path(path).name}: {doc['kind']}/{doc['metadata']['name']}"
            try:
                if doc["apiVersion"].startswith(OPERATOR_GROUP):
                    operator_resource(doc)
                else:
                    kubernetes_validate.validate(
                        doc, kubernetes_validate.latest_version(), strict=True
                    )
                checked += 1
            except Exception as e:  # ValidationError, SchemaNotFoundError, ...
                failures += 1
                print(f"  FAIL {name}: {e}")
    print(f"schemas: {checked} resources valid, {failures} invalid "
          f"(Kubernetes {kubernetes_validate.latest_version()}, "
          f"kubernetes-validate {kubernetes_validate.__version__}; Prometheus Operator "
          f"kinds: cloudcoil-models-prometheus-operator)")
    return 1 if failures or not checked else 0


def rules(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serac-rules.yaml").write_text(yaml.safe_dump(promql.rule_groups()))
    shutil.copy(Path(__file__).with_name("rules.test.yaml"), out / "rules.test.yaml")
    queries = promql.dashboard_queries()
    group = {"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, (_, expr) in enumerate(queries)
    ]}
    (out / "dashboard-rules.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    print(f"rules: {len(promql.alert_rules())} alerts; dashboard: {len(queries)} queries")
    return 0


def runbooks():
    readme = (promql.ROOT / "deployments/README.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    failures = 0
    for rule in promql.alert_rules():
        runbook = rule.get("annotations", {}).get("runbook", "")
        path, _, anchor = runbook.partition("#")
        if path != "deployments/README.md" or anchor not in anchors:
            failures += 1
            print(f"  FAIL {rule['alert']}: runbook '{runbook}' names no heading")
        elif anchor != rule["alert"].lower():
            failures += 1
            print(f"  FAIL {rule['alert']}: runbook '{runbook}' is another alert's")
    print(f"runbooks: {len(promql.alert_rules()) - failures} alerts with a runbook, {failures} without")
    return 1 if failures else 0


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    sys.exit({"schemas": lambda: schemas(args), "rules": lambda: rules(args[0]),
              "runbooks": runbooks}[command]())
