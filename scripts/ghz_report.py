"""What the load scripts read from a ghz JSON report (`ghz -O json`): shared
by bench-read.sh, bench-photo-model.sh and bench-fairness.sh."""
import json
import math


def figures(path):
    """Calls per second, median and 99th-percentile latency in ms, and the
    calls that did not end OK, of the ghz report at `path`."""
    report = json.load(open(path))
    latency = {d["percentage"]: d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    codes = report.get("statusCodeDistribution") or {}
    return {
        "rps": report["rps"],
        "p50": latency.get(50, math.nan),
        "p99": latency.get(99, math.nan),
        "errors": sum(count for code, count in codes.items() if code != "OK"),
    }


def point(out, name):
    """`figures` of the report a load script wrote as `out/NAME.json`
    (`ghz -O json -o`), one per measured point."""
    return figures(out / f"{name}.json")
