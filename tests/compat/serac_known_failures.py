"""pytest plugin: expected failures of an upstream test suite run against Serac.

    python -m pytest -p serac_known_failures --serac-known-failures FILE [--serac-report OUT] ...

FILE has one test per line, `<test id> | <reason>` ('#' starts a comment line; blank
lines are ignored). A test id is pytest's node id relative to the suite's root, e.g.
`tests/integration/test_reads.py::test_pyarrow_deletes[session_catalog-...]`.

Every listed test is marked `xfail(strict=False, reason=...)` and still runs, so:
  * a listed test that fails (or errors in setup) is reported as xfailed, not failed;
  * a listed test that passes is reported as XPASS and named at the end (the list can shrink),
    unless its reason starts with "flaky";
  * an unlisted test that fails fails the run as usual (pytest exits non-zero).
Entries that match no collected test are named at the end too (a stale or mistyped id;
in a run of a subset of the files, entries of other files are not counted as stale).

With --serac-report OUT, a JSON summary is written there: counts by outcome and the ids
of unexpected failures, xpasses and stale entries.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter

import pytest

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("serac", "Serac compatibility runs")
    group.addoption("--serac-known-failures", metavar="FILE", help="list of expected failures: '<test id> | <reason>'")
    group.addoption("--serac-report", metavar="OUT", help="write a JSON summary of the outcomes here")


def parse_known_failures(path: pathlib.Path) -> dict[str, str]:
    known: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, sep, reason = line.partition(" | ")
        test_id, reason = test_id.strip(), reason.strip()
        if not sep or not test_id or not reason:
            raise pytest.UsageError(f"{path}:{n}: expected '<test id> | <reason>', got {raw!r}")
        if test_id in known:
            raise pytest.UsageError(f"{path}:{n}: {test_id} is listed twice")
        known[test_id] = reason
    return known


class KnownFailures:
    """Registered by pytest_configure when --serac-known-failures is given."""

    def __init__(self, config: pytest.Config, known: dict[str, str]) -> None:
        self.config = config
        self.known = known
        self.collected_files: set[str] = set()
        self.collected: set[str] = set()
        self.outcomes: dict[str, str] = {}  # test id -> passed|failed|error|skipped|xfailed|xpassed

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            self.collected.add(item.nodeid)
            self.collected_files.add(item.nodeid.split("::", 1)[0])
            reason = self.known.get(item.nodeid)
            if reason is not None:
                item.add_marker(pytest.mark.xfail(reason=f"known: {reason}", strict=False))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        nodeid = report.nodeid
        wasxfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if wasxfail:
                outcome = "xfailed" if report.skipped else "xpassed"
            else:
                outcome = report.outcome  # passed | failed | skipped
            if self.outcomes.get(nodeid) != "error":
                self.outcomes[nodeid] = outcome
        elif report.failed:  # setup or teardown error, not covered by a listed xfail
            self.outcomes[nodeid] = "error"
        elif report.skipped:  # skipped or xfailed in setup
            self.outcomes.setdefault(nodeid, "xfailed" if wasxfail else "skipped")

    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001
        tr = terminalreporter
        counts = Counter(self.outcomes.values())
        unexpected = sorted(t for t, o in self.outcomes.items() if o in ("failed", "error"))
        xpassed_all = sorted(t for t, o in self.outcomes.items() if o == "xpassed")
        # A test listed as flaky may pass; that is no reason to delete its line.
        flaky = [t for t in xpassed_all if self.known[t].startswith("flaky")]
        xpassed = [t for t in xpassed_all if t not in flaky]
        stale = sorted(
            t for t in self.known if t not in self.collected and t.split("::", 1)[0] in self.collected_files
        )
        tr.section("Serac known failures")
        tr.write_line(
            f"listed: {len(self.known)}; in this run: {sum(1 for t in self.known if t in self.collected)}; "
            + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        )
        if unexpected:
            tr.write_line(f"{len(unexpected)} UNEXPECTED failure(s)/error(s), not in the known-failures list:", red=True)
            for t in unexpected:
                tr.write_line(f"  {t}")
        if xpassed:
            tr.write_line(f"{len(xpassed)} listed test(s) now PASS; remove them from the list:", yellow=True)
            for t in xpassed:
                tr.write_line(f"  {t}")
        if flaky:
            tr.write_line(f"{len(flaky)} listed flaky test(s) passed this time: " + ", ".join(flaky))
        if stale:
            tr.write_line(f"{len(stale)} listed test id(s) match no collected test (stale?):", yellow=True)
            for t in stale:
                tr.write_line(f"  {t}")
        out = self.config.getoption("--serac-report")
        if out:
            pathlib.Path(out).write_text(
                json.dumps(
                    {
                        "counts": dict(counts),
                        "unexpected": unexpected,
                        "xpassed": xpassed,
                        "flaky_passed": flaky,
                        "stale": stale,
                    },
                    indent=2,
                )
                + "\n"
            )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--serac-known-failures")
    if path:
        known = parse_known_failures(pathlib.Path(path))
        config.pluginmanager.register(KnownFailures(config, known), "serac-known-failures-state")
