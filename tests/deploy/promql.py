"""What the deploy checks read from the rules and the dashboard: their PromQL expressions and
the series selectors in them."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES_SOURCE = ROOT / "deployments/overlays/production/prometheusrule.yaml"
DASHBOARD = ROOT / "deployments/grafana/serac.json"

# Grafana variables, as the checks substitute them.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$job": "serac"}

FUNCTIONS_AND_KEYWORDS = {
    # aggregations and their modifiers
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset",
    # functions the rules and the dashboard use (any other makes the check fail loudly)
    "rate", "irate", "increase", "changes", "histogram_quantile", "vector", "scalar",
    "max_over_time", "min_over_time", "avg_over_time", "absent", "clamp_min", "label_replace",
    "time", "delta", "deriv", "resets",
}


def rule_groups():
    """The `spec` of the PrometheusRule: a Prometheus rule file."""
    return yaml.safe_load(RULES_SOURCE.read_text())["spec"]


def alert_rules():
    return [rule for group in rule_groups()["groups"] for rule in group["rules"]]


def dashboard_queries():
    """(panel title, expression with the variables substituted) for every query."""
    board = json.loads(DASHBOARD.read_text())
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            if "$" in expr:
                raise ValueError(f"unknown variable in {panel['title']!r}: {expr}")
            out.append((panel["title"], expr))
    return out


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_TOKEN = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def selectors(expr):
    """Every series selector in `expr`: a metric name with its label matchers, without range
    or offset (`rate(x{a="b"}[5m])` gives `x{a="b"}`)."""
    found = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == '"':
            i = _STRING.match(expr, i).end()
            continue
        if c == "[":
            # a range or subquery: [5m], [30m:1m]
            i = expr.index("]", i) + 1
            continue
        if c.isdigit() or c == ".":
            # a number (0.99, 1e3): not a name
            m = re.compile(r"[0-9.]+(?:[eE][+-]?[0-9]+)?").match(expr, i)
            i = m.end()
            continue
        if c == "{":
            # label list of by/without (...) never starts with {, so this is a matcher
            # block without a name: not used here.
            raise ValueError(f"selector without a metric name in {expr}")
        m = _TOKEN.match(expr, i)
        if not m:
            i += 1
            continue
        name = m.group(0)
        end = m.end()
        # Skip label lists of by/without/on/ignoring: "(a, b)".
        if name in ("by", "without", "on", "ignoring", "group_left", "group_right"):
            j = expr.index("(", end)
            i = expr.index(")", j) + 1
            continue
        rest = expr[end:].lstrip()
        if name in FUNCTIONS_AND_KEYWORDS or rest.startswith("("):
            if name not in FUNCTIONS_AND_KEYWORDS:
                raise ValueError(f"unknown function {name} in {expr}")
            i = end
            continue
        if name in ("Inf", "NaN", "inf", "nan"):
            i = end
            continue
        selector = name
        j = end
        while j < len(expr) and expr[j] == " ":
            j += 1
        if j < len(expr) and expr[j] == "{":
            k = j + 1
            while expr[k] != "}":
                if expr[k] == '"':
                    k = _STRING.match(expr, k).end()
                else:
                    k += 1
            selector += expr[j : k + 1]
            j = k + 1
        found.append(selector)
        i = j
    return found


def metric_name(selector):
    return selector.split("{", 1)[0]
