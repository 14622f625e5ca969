"""What the grounding checker costs: a typical answer against 10 KB and 1 MB of tool output.

Prints a markdown table of the median (and 90th percentile) time of one
``check`` call: a ~1 KB answer with a dozen claims against EC2-style JSON of
about 10 KB, the same against about 1 MB of JSON, and against about 1 MB of
plain-text log lines.

    .venv/bin/python bench/grounding_speed.py
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO / "src", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from llm_gateway.grounding import Conversation, ToolResult, check  # noqa: E402

ANSWER = (
    "You have {count} instances in us-east-1. {running} of them are running and {stopped} are "
    "stopped. The first one, i-{first:017x}, is a t3.micro launched on March 4, 2024 at "
    "08:15 UTC with the private address 10.0.0.1; it has been up for about 3 days and its "
    "CPU peaked at 93.1% this morning. The stopped ones were stopped by the nightly "
    "schedule, so nothing is wrong with them; you can start them again from the console "
    "whenever you need them. Your bill for these instances this month is $1,234.50 so far, "
    "and all {count} of them were launched from the same template. [tool:call_ec2] If you "
    "want, I can also list their volumes, check the security groups for port 443 and 22, "
    "or look at the load balancer's target health for the web tier. None of them has been "
    "restarted since launch, and the running ones are spread over the web tier only, "
    "named web-0 onwards. Let me know what you would like to do next."
)


def ec2_output(count: int) -> str:
    instances = [
        {
            "InstanceId": f"i-{n:017x}",
            "InstanceType": "t3.micro",
            "State": {"Code": 16 if n % 4 else 80, "Name": "running" if n % 4 else "stopped"},
            "LaunchTime": "2024-03-04T08:15:00Z",
            "PrivateIpAddress": f"10.0.{n // 250}.{n % 250 + 1}",
            "Tags": [{"Key": "Name", "Value": f"web-{n}"}],
        }
        for n in range(count)
    ]
    metrics = {"cpu_max_pct": 93.1, "bill_usd": 1234.5, "uptime_hours": 72}
    return json.dumps({"Reservations": [{"Instances": instances}], "Metrics": metrics})


def log_output(size: int) -> str:
    lines: list[str] = []
    n, total = 0, 0
    while total < size:
        line = f"2024-03-04T08:{n % 60:02d}:00Z INFO web-{n % 50} GET /api 200 {n % 97} ms\n"
        lines.append(line)
        total += len(line)
        n += 1
    return "".join(lines)


def case(output: str, count: int) -> Callable[[], object]:
    tool = ToolResult("call_ec2", "describe_instances", '{"region": "us-east-1"}', output)
    question = "What's running in us-east-1, and are ports 443 and 22 open?"
    conversation = Conversation((tool,), question=question)
    running = sum(1 for n in range(count) if n % 4)
    answer = ANSWER.format(count=count, running=running, stopped=count - running, first=0)
    verdict = check(conversation, answer)
    assert verdict.failed != ("checker_error",), verdict
    return lambda: check(conversation, answer)


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm-up
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def report() -> str:
    small, large = ec2_output(40), ec2_output(5_000)
    logs = log_output(1_000_000)
    rows = [
        (f"~1 KB answer, {len(small) / 1000:.0f} KB of JSON output", case(small, 40), 200),
        (f"~1 KB answer, {len(large) / 1e6:.1f} MB of JSON output", case(large, 5_000), 10),
        (f"~1 KB answer, {len(logs) / 1e6:.1f} MB of plain-text logs", case(logs, 40), 10),
    ]
    lines = [
        f"grounding check, answer of {len(ANSWER)} characters",
        "",
        "| case | median (ms) | p90 (ms) |",
        "|---|---:|---:|",
    ]
    for name, fn, runs in rows:
        median, p90 = timed(fn, runs)
        lines.append(f"| {name} | {median:.2f} | {p90:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
