"""Validate bench/grounding_cases.json, the blind evaluation set for the grounding checker.

Standard library only. Checks that every case has its fields with the right
types, that the messages are well-formed OpenAI Chat Completions messages
(every tool message answers a pending tool call of the assistant message
before it, every tool call is answered before the conversation moves on,
arguments are JSON objects), that ids are unique and that the category names
agree with the labels (``grounded_*`` exactly for grounded cases). Prints the
counts per label and per category; exits 1 if anything is wrong.

    python bench/grounding_cases_check.py [path]
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).with_name("grounding_cases.json")
FIELDS = {"id": str, "category": str, "messages": list, "answer": str, "grounded": bool, "why": str}
ROLES = {"system", "user", "assistant", "tool"}


def check_messages(messages: list[Any], where: str) -> list[str]:  # noqa: C901, PLR0915
    errors: list[str] = []
    if not messages:
        return [f"{where}: no messages"]
    seen_ids: set[str] = set()
    pending: list[str] = []  # tool calls of the last assistant message not yet answered
    tool_results = 0
    for i, m in enumerate(messages):
        at = f"{where} messages[{i}]"
        if not isinstance(m, dict):
            errors.append(f"{at}: not an object")
            continue
        role = m.get("role")
        if role not in ROLES:
            errors.append(f"{at}: bad role {role!r}")
            continue
        if role != "tool" and pending:
            errors.append(f"{at}: tool calls {pending} not answered before a {role} message")
            pending = []
        allowed = (
            {"role", "content", "name"}
            | ({"tool_calls"} if role == "assistant" else set())
            | ({"tool_call_id"} if role == "tool" else set())
        )
        extra = set(m) - allowed
        if extra:
            errors.append(f"{at}: unexpected keys {sorted(extra)}")
        content = m.get("content")
        if role in ("system", "user"):
            if not isinstance(content, str) or not content.strip():
                errors.append(f"{at}: {role} content must be a non-empty string")
        elif role == "assistant":
            calls = m.get("tool_calls")
            if calls is None:
                if not isinstance(content, str) or not content.strip():
                    errors.append(f"{at}: assistant without tool_calls needs text content")
            else:
                if content is not None and not isinstance(content, str):
                    errors.append(f"{at}: assistant content must be a string or null")
                if not isinstance(calls, list) or not calls:
                    errors.append(f"{at}: tool_calls must be a non-empty list")
                    continue
                for j, tc in enumerate(calls):
                    tat = f"{at}.tool_calls[{j}]"
                    if not isinstance(tc, dict) or set(tc) != {"id", "type", "function"}:
                        errors.append(f"{tat}: must have exactly id, type, function")
                        continue
                    if tc["type"] != "function":
                        errors.append(f"{tat}: type must be 'function'")
                    cid = tc["id"]
                    if not isinstance(cid, str) or not cid:
                        errors.append(f"{tat}: id must be a non-empty string")
                        continue
                    if cid in seen_ids:
                        errors.append(f"{tat}: duplicate tool call id {cid!r}")
                    seen_ids.add(cid)
                    pending.append(cid)
                    fn = tc["function"]
                    if not isinstance(fn, dict) or set(fn) != {"name", "arguments"}:
                        errors.append(f"{tat}.function: must have exactly name, arguments")
                        continue
                    if not isinstance(fn["name"], str) or not fn["name"]:
                        errors.append(f"{tat}.function.name must be a non-empty string")
                    if not isinstance(fn["arguments"], str):
                        errors.append(f"{tat}.function.arguments must be a JSON string")
                        continue
                    try:
                        args = json.loads(fn["arguments"])
                    except json.JSONDecodeError as e:
                        errors.append(f"{tat}.function.arguments is not JSON: {e}")
                        continue
                    if not isinstance(args, dict):
                        errors.append(f"{tat}.function.arguments must encode a JSON object")
        else:  # tool
            cid = m.get("tool_call_id")
            if cid not in pending:
                errors.append(f"{at}: tool_call_id {cid!r} matches no pending tool call")
            else:
                pending.remove(cid)
            if not isinstance(content, str):
                errors.append(f"{at}: tool content must be a string")
            tool_results += 1
    if pending:
        errors.append(f"{where}: tool calls {pending} never answered")
    if messages[0].get("role") not in ("system", "user"):
        errors.append(f"{where}: the conversation must start with a system or user message")
    if messages[-1].get("role") != "tool":
        errors.append(
            f"{where}: the last message must be a tool result (the answer under test follows it)"
        )
    if not tool_results:
        errors.append(f"{where}: no tool results to ground the answer in")
    return errors


def check(cases: object) -> list[str]:  # noqa: C901
    if not isinstance(cases, list):
        return ["top level must be a list of cases"]
    errors: list[str] = []
    ids: Counter[str] = Counter()
    for n, c in enumerate(cases):
        where = f"case[{n}]"
        if not isinstance(c, dict):
            errors.append(f"{where}: not an object")
            continue
        where = f"case[{n}] {c.get('id')!r}"
        for field, typ in FIELDS.items():
            if field not in c:
                errors.append(f"{where}: missing {field}")
            elif not isinstance(c[field], typ):
                errors.append(f"{where}: {field} must be {typ.__name__}")
            elif typ is str and not c[field].strip():
                errors.append(f"{where}: {field} is empty")
        extra = set(c) - set(FIELDS)
        if extra:
            errors.append(f"{where}: unexpected fields {sorted(extra)}")
        if isinstance(c.get("id"), str):
            ids[c["id"]] += 1
        labelled = isinstance(c.get("category"), str) and isinstance(c.get("grounded"), bool)
        if labelled and c["category"].startswith("grounded_") != c["grounded"]:
            errors.append(
                f"{where}: category {c['category']!r} disagrees with grounded={c['grounded']}"
            )
        if isinstance(c.get("answer"), str) and "[tool:" in c["answer"]:
            errors.append(f"{where}: citation markers are out of scope")
        if isinstance(c.get("messages"), list):
            errors.extend(check_messages(c["messages"], where))
    errors.extend(f"duplicate id {i!r} ({k} times)" for i, k in ids.items() if k > 1)
    return errors


def report(cases: list[Any]) -> None:
    labels = Counter("grounded" if c["grounded"] else "ungrounded" for c in cases)
    total = len(cases)
    print(
        f"{total} cases: {labels['grounded']} grounded ({labels['grounded'] / total:.0%}), "
        f"{labels['ungrounded']} ungrounded ({labels['ungrounded'] / total:.0%})"
    )
    per = Counter((c["grounded"], c["category"]) for c in cases)
    for grounded in (True, False):
        print(f"\n{'grounded' if grounded else 'ungrounded'} categories:")
        for (g, cat), k in sorted(per.items(), key=lambda kv: (-kv[1], kv[0][1])):
            if g == grounded:
                print(f"  {cat:32} {k:3}")
    shapes: Counter[str] = Counter()
    for c in cases:
        ms = c["messages"]
        tools = [m for m in ms if m["role"] == "tool"]
        shapes["multi-turn (earlier assistant text)"] += any(
            m["role"] == "assistant" and "tool_calls" not in m for m in ms
        )
        shapes["several tool results"] += len(tools) > 1
        shapes["plain-text tool output"] += any(not _is_json(m["content"]) for m in tools)
    print("\nconversation shapes:")
    for shape, n in shapes.items():
        print(f"  {shape:36} {n:3}")


def _is_json(s: str) -> bool:
    try:
        json.loads(s)
    except json.JSONDecodeError:
        return False
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else DEFAULT
    cases = json.loads(path.read_text(encoding="utf-8"))
    errors = check(cases)
    if errors:
        for e in errors:
            print("ERROR", e)
        print(f"\n{len(errors)} error(s) in {path}")
        return 1
    report(cases)
    if len(cases) < 120:
        print(f"\nERROR fewer than 120 cases ({len(cases)})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
