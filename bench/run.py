"""``make bench``: the gateway against a direct call to the same upstream, and optionally LiteLLM.

The gateway (or LiteLLM's proxy) runs pinned to core 0, wrk to core 1, nginx
(the upstream) shares core 1 with wrk: it needs far less than a core. Every
configuration is measured in the same run with the same upstream, load and
core, and everything started is stopped by PID at the end. See
docs/performance.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import load, procs, stages, targets, upstream  # noqa: E402

GATEWAY_CPUS = "0"
LOAD_CPUS = "1"


@dataclass
class Row:
    target: str
    mode: str
    connections: int
    result: load.LoadResult
    cpu_ms: float | None
    rss_mb: float | None
    direct_p50_ms: float | None
    prompt: str = "clean"


def ensure_tools() -> None:
    missing = [
        tool for tool in ("wrk", "nginx") if shutil.which(tool, path="/usr/sbin:/usr/bin") is None
    ]
    if not missing:
        return
    packages = {"wrk": "wrk", "nginx": "nginx-light"}
    if os.geteuid() == 0:
        print(f"installing {', '.join(missing)} with apt-get ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-q", *(packages[m] for m in missing)], check=True, env=env
        )
    else:
        sys.exit(
            f"make bench needs {' and '.join(missing)}: "
            f"sudo apt-get install {' '.join(packages[m] for m in missing)}"
        )


def script_table(name: str) -> str:
    """What a bench script prints (the DLP evaluation against Presidio, the grounding
    checker's accuracy and speed), or why it failed."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / name)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else f"{name} failed:\n{done.stderr[-2000:]}"


#: The prompts measured: ``clean`` is about 1 KB of plain text, as in the comparison
#: the targets were set against; ``agent`` is what an agent sends on its third turn.
PROMPTS = ("clean", "agent")


def request_body(work: Path, model: str, stream: bool, prompt: str = "clean") -> Path:
    body: dict[str, object] = {"model": model, **(agent_turn() if prompt == "agent" else clean())}
    if stream:
        body["stream"] = True
    path = work / f"body-{model}-{prompt}-{'stream' if stream else 'json'}.json"
    path.write_text(json.dumps(body))
    return path


def clean() -> dict[str, object]:
    text = (
        "Summarise the quarterly report for the operations team in three short bullet points. " * 12
    )[:1000]
    return {"messages": [{"role": "system", "content": "You are concise."},
                         {"role": "user", "content": text}]}  # fmt: skip


def agent_turn() -> dict[str, object]:
    """An operations agent's third turn, about 4 KB: a system prompt, three tool
    definitions, a support ticket carrying a customer's email address and phone
    number, a tool call and its JSON result (instance ids, private addresses), the
    model's summary, and a follow-up that names the customer again. Nothing in it
    asks for a confirmation or carries a secret: it is forwarded, redacted."""

    def tool(name: str, description: str, **properties: str) -> dict[str, object]:
        schema = {k: {"type": "string", "description": v} for k, v in properties.items()}
        return {"type": "function", "function": {
            "name": name, "description": description,
            "parameters": {"type": "object", "properties": schema, "required": list(schema)},
        }}  # fmt: skip

    instances = [
        {"id": f"i-0{n:016x}", "state": "running" if n % 3 else "stopped",
         "private_ip": f"10.20.{n}.{40 + n}", "type": "m6i.large", "owner": "billing-api"}
        for n in range(1, 8)
    ]  # fmt: skip
    return {
        "tools": [
            tool(
                "describe_instances",
                "List the EC2 instances of a service.",
                service="the service's name",
                region="an AWS region",
            ),
            tool("get_ticket", "Read a support ticket.", ticket_id="the ticket's id"),
            tool(
                "post_reply",
                "Reply to a support ticket.",
                ticket_id="the ticket's id",
                body="the reply, in plain text",
            ),
        ],
        "messages": [
            {
                "role": "system",
                "content": (
                    "You are the on-call assistant of the platform team. Answer from the tools' "
                    "results only, cite them as [tool:<id>], and keep replies under 150 words. "
                    "Never share one customer's details with another."
                ),
            },
            {
                "role": "user",
                "content": (
                    "Ticket 48213 from Dana Whitfield (dana.whitfield@example.com, +1 415 555 "
                    "0134): since this morning the billing API times out for about one request "
                    "in five, mostly on invoice exports. She says it started after last night's "
                    "deploy. Check the billing-api instances in eu-west-1 and tell me which are "
                    "not running."
                ),
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_7f3a",
                        "type": "function",
                        "function": {
                            "name": "describe_instances",
                            "arguments": json.dumps(
                                {"service": "billing-api", "region": "eu-west-1"}
                            ),
                        },
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_7f3a",
                "content": json.dumps({"instances": instances, "count": len(instances)}),
            },
            {
                "role": "assistant",
                "content": (
                    "Two of the seven billing-api instances are stopped: i-00000000000000003 and "
                    "i-00000000000000006 [tool:call_7f3a]. The other five are running. A fleet "
                    "running at five of seven would explain timeouts on about one request in "
                    "five under the export load."
                ),
            },
            {
                "role": "user",
                "content": (
                    "Thanks. Draft a short reply to Dana at dana.whitfield@example.com saying we "
                    "found the cause and expect a fix within the hour; she asked to be called "
                    "back on +1 415 555 0134 if it takes longer. Keep it friendly."
                ),
            },
        ],
    }


def measure(
    name: str,
    url: str,
    auth: str,
    work: Path,
    pid: int | None,
    args: argparse.Namespace,
    direct: dict[tuple[str, int], float],
) -> list[Row]:
    """Each prompt of ``--prompts`` (the direct baseline: the clean one), JSON and stream."""
    rows = []
    prompts = ["clean"] if name == "direct" else args.prompts
    for prompt, mode in ((p, m) for p in prompts for m in ("json", "stream")):
        model = "bench" if mode == "json" else "bench-stream"
        body = request_body(work, model, mode == "stream", prompt)
        stream_prefix = "/stream" if name == "direct" and mode == "stream" else ""
        path = f"{url}{stream_prefix}/v1/chat/completions"
        warm_up = load.run_wrk(
            path, body_file=body, auth=auth, connections=4, seconds=2, cpus=LOAD_CPUS, work=work
        )
        if warm_up.errors:
            # Timing failures would be meaningless: stop here, keeping the logs.
            sys.exit(
                f"{name} {mode}: {warm_up.errors} of {warm_up.requests} warm-up requests "
                f"failed; the logs are in {work}"
            )
        for connections in args.connections:
            before = procs.cpu_seconds(pid) if pid else 0.0
            result = load.run_wrk(
                path,
                body_file=body,
                auth=auth,
                connections=connections,
                seconds=args.duration,
                cpus=LOAD_CPUS,
                work=work,
            )
            cpu_ms = (
                (procs.cpu_seconds(pid) - before) * 1000 / result.requests
                if pid and result.requests
                else None
            )
            rss = procs.rss_mb(pid, "VmHWM") if pid else None
            if name == "direct":
                direct[(mode, connections)] = result.p50_ms
            baseline = direct.get((mode, connections))
            rows.append(Row(name, mode, connections, result, cpu_ms, rss, baseline, prompt))
            print(
                f"  {name:<12} {prompt:<6} {mode:<6} c={connections:<3} {result.rps:>9.0f} req/s  "
                f"p50 {result.p50_ms:.2f} ms",
                flush=True,
            )
    return rows


def first_chunk_delay(url: str, auth: str, work: Path, samples: int = 300) -> float:
    """Median time from sending a streaming request to receiving its first content chunk (ms)."""
    body = request_body(work, "bench-stream", True).read_bytes()
    headers = {"authorization": auth, "content-type": "application/json"}
    times = []
    with httpx.Client(timeout=10) as client:
        for i in range(samples + 20):
            start = time.perf_counter()
            with client.stream("POST", url, content=body, headers=headers) as response:
                chunks = response.iter_raw()
                for chunk in chunks:
                    if b"word0" in chunk:
                        break
                elapsed = time.perf_counter() - start
                for _ in chunks:
                    pass
            if i >= 20:
                times.append(elapsed * 1000)
    return statistics.median(times)


def table(rows: list[Row]) -> str:
    lines = [
        "| target | prompt | mode | conc | req/s | p50 ms | p99 ms | added p50 ms | CPU ms/req "
        "| peak RSS MB | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        added = (
            f"{r.result.p50_ms - r.direct_p50_ms:.2f}"
            if r.direct_p50_ms is not None and r.target != "direct"
            else "-"
        )
        cpu = f"{r.cpu_ms:.3f}" if r.cpu_ms is not None else "-"
        rss = f"{r.rss_mb:.0f}" if r.rss_mb is not None else "-"
        lines.append(
            f"| {r.target} | {r.prompt} | {r.mode} | {r.connections} | {r.result.rps:.0f} "
            f"| {r.result.p50_ms:.2f} | "
            f"{r.result.p99_ms:.2f} | {added} | {cpu} | {rss} | {r.result.errors} |"
        )
    return "\n".join(lines)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare", choices=["litellm"], help="also measure LiteLLM's proxy")
    parser.add_argument("--profiles", default="passthrough,full")
    parser.add_argument(
        "--prompts", default=",".join(PROMPTS), help="clean (1 KB of text), agent (see agent_turn)"
    )
    parser.add_argument("--duration", type=float, default=5, help="seconds per measurement")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--soak", type=float, default=0, help="seconds of c=64 load to watch RSS")
    parser.add_argument("--workers", action="store_true", help="also compare 1 and 2 workers")
    parser.add_argument("--no-stages", action="store_true", help="skip the stage microbenchmarks")
    parser.add_argument(
        "--no-audit", action="store_true", help="skip the strict/fast audit on SQLite/PostgreSQL"
    )
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    args.prompts = args.prompts.split(",")
    if unknown := set(args.prompts) - set(PROMPTS):
        parser.error(f"--prompts: unknown {', '.join(sorted(unknown))} (known: {PROMPTS})")
    return args


def main() -> None:
    args = arguments()
    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="llm-gateway-bench-"))
    work.chmod(0o755)  # nginx's workers run as an unprivileged user when started by root
    services: list[procs.Service] = []
    rows: list[Row] = []
    notes: list[str] = []
    direct: dict[tuple[str, int], float] = {}
    try:
        nginx = upstream.start_nginx(work, LOAD_CPUS)
        services.append(nginx)
        print(f"upstream: nginx at {nginx.url}; work dir {work}", flush=True)
        rows += measure("direct", nginx.url, "", work, None, args, direct)
        auth = targets.bearer()
        for profile in args.profiles.split(","):
            gateway = targets.start_gateway(profile, nginx.url, work, GATEWAY_CPUS)
            services.append(gateway)
            profile_rows, profile_notes = measure_profile(
                profile, gateway, nginx, auth, work, args, direct
            )
            rows += profile_rows
            notes += profile_notes
            gateway.stop()
        if not args.no_audit:
            notes += audit_modes(nginx.url, auth, work, args)
        if args.workers:
            notes += workers_scaling(nginx.url, auth, work, args)
        if args.compare == "litellm":
            litellm = targets.start_litellm(nginx.url, work, GATEWAY_CPUS)
            services.append(litellm)
            key = f"Bearer {targets.LITELLM_KEY}"
            rows += measure("litellm", litellm.url, key, work, litellm.pid, args, direct)
            litellm.stop()
    finally:
        for service in services:
            service.stop()
    report(rows, notes, args)
    shutil.rmtree(work, ignore_errors=True)


def measure_profile(
    profile: str,
    gateway: procs.Service,
    nginx: procs.Service,
    auth: str,
    work: Path,
    args: argparse.Namespace,
    direct: dict[tuple[str, int], float],
) -> tuple[list[Row], list[str]]:
    """One profile's rows, and its notes: idle RSS, first chunk, soak."""
    notes: list[str] = []
    idle = procs.rss_mb(gateway.pid)
    rows = measure(profile, gateway.url, auth, work, gateway.pid, args, direct)
    ttfb_gateway = first_chunk_delay(f"{gateway.url}/v1/chat/completions", auth, work)
    ttfb_direct = first_chunk_delay(f"{nginx.url}/stream/v1/chat/completions", "", work)
    notes.append(
        f"{profile}: idle RSS {idle:.0f} MB; first stream chunk {ttfb_gateway:.2f} ms "
        f"after the request vs {ttfb_direct:.2f} ms direct "
        f"(added {ttfb_gateway - ttfb_direct:.2f} ms)"
    )
    if args.soak and profile == args.profiles.split(",")[-1]:
        notes.append(soak(gateway, auth, work, args.soak))
    return rows, notes


def report(rows: list[Row], notes: list[str], args: argparse.Namespace) -> None:
    print()
    print(table(rows))
    print()
    best = max((r.result.rps for r in rows if r.target != "direct" and r.mode == "json"), default=0)
    top = max((r.result.rps for r in rows if r.target == "direct" and r.mode == "json"), default=0)
    if best:
        print(
            f"- upstream direct: {top:.0f} req/s, {top / best:.0f}x the fastest proxied JSON result"
        )
    if args.compare == "litellm":
        print(ratios(rows))
    for note in notes:
        print(f"- {note}")
    if not args.no_stages:
        print()
        print(stages.report())
        print()
        for name in ("dlp_eval.py", "grounding_eval.py", "grounding_speed.py"):
            print(script_table(name))
            print()


def ratios(rows: list[Row]) -> str:
    lines = []
    for r in rows:
        if r.target in ("direct", "litellm"):
            continue
        other = next(
            (
                o
                for o in rows
                if o.target == "litellm"
                and (o.prompt, o.mode, o.connections) == (r.prompt, r.mode, r.connections)
            ),
            None,
        )
        if other and other.result.rps:
            lines.append(
                f"{r.target}/{r.prompt}/{r.mode}/c={r.connections}: "
                f"{r.result.rps / other.result.rps:.1f}x LiteLLM"
            )
    return "- ratios: " + "; ".join(lines)


def soak(gateway: procs.Service, auth: str, work: Path, seconds: float) -> str:
    body = request_body(work, "bench", False)
    start = procs.rss_mb(gateway.pid)
    result = load.run_wrk(
        f"{gateway.url}/v1/chat/completions",
        body_file=body,
        auth=auth,
        connections=64,
        seconds=seconds,
        cpus=LOAD_CPUS,
        work=work,
    )
    end = procs.rss_mb(gateway.pid)
    return (
        f"soak {seconds:.0f} s at c=64: {result.rps:.0f} req/s, {result.errors} errors, "
        f"RSS {start:.0f} MB at start, {end:.0f} MB at end"
    )


#: PostgreSQL for the audit measurement: the machine's own, a database made for the run.
BENCH_PG = "postgresql://postgres@127.0.0.1:5432"


def audit_modes(upstream_url: str, auth: str, work: Path, args: argparse.Namespace) -> list[str]:
    """The full profile with AUDIT_MODE strict and fast, on SQLite and on PostgreSQL:
    JSON at c=16, req/s, p99 and CPU per request (/metrics on in every one)."""
    databases = {"sqlite": ""}
    database = postgres_database()
    if database is None:
        notes = ["audit on PostgreSQL: skipped (no PostgreSQL at 127.0.0.1:5432)"]
    else:
        databases["postgresql"], notes = database, []
    lines = ["| audit | database | req/s | p99 ms | CPU ms/req |", "|---|---|---:|---:|---:|"]
    try:
        audit_rows(lines, databases, upstream_url, auth, work, args)
    finally:
        if database is not None:
            drop_database(database)
    title = "audit modes, full profile, JSON c=16 (mean of two alternated runs):"
    return [*notes, f"{title}\n\n" + "\n".join(lines) + "\n"]


def audit_rows(
    lines: list[str],
    databases: dict[str, str],
    upstream_url: str,
    auth: str,
    work: Path,
    args: argparse.Namespace,
) -> None:
    """Each variant measured twice, the rounds alternated (the machine drifts): their mean."""
    body = request_body(work, "bench", False)
    variants = [(mode, db) for mode in ("strict", "fast") for db in databases]
    runs: dict[tuple[str, str], list[tuple[float, float, float]]] = {v: [] for v in variants}
    for round_ in range(2):
        for mode, db_name in variants:
            url = databases[db_name]
            env = {"AUDIT_MODE": mode, "DATABASE_URL": url, "METRICS_ENABLED": "true"}
            gateway = targets.start_gateway(
                "full", upstream_url, work, GATEWAY_CPUS, env=env,
                name=f"-{mode}-{db_name}-{round_}",
            )  # fmt: skip
            try:
                path = f"{gateway.url}/v1/chat/completions"
                load.run_wrk(path, body_file=body, auth=auth, connections=16, seconds=3,
                             cpus=LOAD_CPUS, work=work)  # fmt: skip
                before = procs.cpu_seconds(gateway.pid)
                result = load.run_wrk(path, body_file=body, auth=auth, connections=16,
                                      seconds=args.duration, cpus=LOAD_CPUS, work=work)  # fmt: skip
                cpu = (procs.cpu_seconds(gateway.pid) - before) * 1000 / max(result.requests, 1)
            finally:
                gateway.stop()
            runs[(mode, db_name)].append((result.rps, result.p99_ms, cpu))
            print(f"  full audit={mode:<6} {db_name:<10} c=16 {result.rps:>9.0f} req/s "
                  f"{cpu:.3f} ms CPU", flush=True)  # fmt: skip
    for (mode, db_name), measured in runs.items():
        rps, p99, cpu = (statistics.mean(m[i] for m in measured) for i in range(3))
        lines.append(f"| {mode} | {db_name} | {rps:,.0f} | {p99:.2f} | {cpu:.3f} |")


def postgres_database() -> str | None:
    """A fresh, migrated database on the machine's PostgreSQL, or None without one."""
    import asyncio
    import uuid

    try:
        import asyncpg
    except ImportError:
        return None
    name = f"llm_gateway_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(f"{BENCH_PG}/postgres", timeout=3)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    url = f"{BENCH_PG}/{name}"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([str(REPO / ".venv/bin/llm-gateway"), "db", "upgrade"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    return url


def drop_database(url: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(f"{BENCH_PG}/postgres", timeout=3)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')
        finally:
            await conn.close()

    asyncio.run(drop())


def workers_scaling(
    upstream_url: str, auth: str, work: Path, args: argparse.Namespace
) -> list[str]:
    """1 vs 2 workers on both cores (wrk and nginx compete with them: a lower bound)."""
    body = request_body(work, "bench", False)
    notes = []
    for workers in (1, 2):
        gateway = targets.start_gateway("full", upstream_url, work, "0,1", workers=workers)
        try:
            load.run_wrk(
                f"{gateway.url}/v1/chat/completions",
                body_file=body,
                auth=auth,
                connections=8,
                seconds=1,
                cpus="0,1",
                work=work,
            )
            result = load.run_wrk(
                f"{gateway.url}/v1/chat/completions",
                body_file=body,
                auth=auth,
                connections=64,
                seconds=args.duration,
                cpus="0,1",
                work=work,
            )
            notes.append(
                f"{workers} worker(s), cores 0-1 shared with wrk and nginx: "
                f"{result.rps:.0f} req/s at c=64"
            )
        finally:
            gateway.stop()
    return notes


if __name__ == "__main__":
    main()
