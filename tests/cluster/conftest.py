"""Prints the table of the cluster fault runs at the end of the session,
and writes it as JSON to ``$NOTIFBUS_FAULTS_JSON`` when that is set."""

import dataclasses
import json
import os


def pytest_terminal_summary(terminalreporter):
    from tests.cluster import faults, test_cluster_faults

    results = test_cluster_faults.RESULTS
    if not results:
        return
    terminalreporter.section("fault runs on a 3-node Apache Kafka cluster")
    terminalreporter.write_line(faults.Result.header())
    for result in results:
        terminalreporter.write_line(result.row())
        if result.errors:
            terminalreporter.write_line(f"    errors: {result.errors}")
        found = {k: v for k, v in result.details.items() if v}
        if found:
            terminalreporter.write_line(f"    {found}")
    path = os.environ.get("NOTIFBUS_FAULTS_JSON")
    if path:
        with open(path, "w") as out:
            json.dump([dataclasses.asdict(r) for r in results], out,
                      indent=1)
