#!/usr/bin/env python3
"""Validate bench/grounding_cases_2.json (stdlib only).

Checks fields and types, unique ids, OpenAI Chat Completions message shapes,
tool_call_id pairing, that each conversation ends with the tool message(s)
the answer reports on, and that categories start with "grounded_" exactly
when grounded is true. Prints counts per label and per category.

Usage: python3 bench/grounding_cases_2_check.py [path]
Exit status is 1 if any problem is found.
"""

import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT = Path(__file__).with_name("grounding_cases_2.json")
FIELDS = {"id": str, "category": str, "messages": list, "answer": str, "grounded": bool, "why": str}
CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def check_messages(msgs: list[Any], err: Callable[[str], None]) -> None:  # noqa: C901, PLR0915
    if not msgs:
        err("messages is empty")
        return
    i = 0
    if msgs[0].get("role") == "system":
        if not isinstance(msgs[0].get("content"), str) or not msgs[0]["content"].strip():
            err("system message needs non-empty string content")
        i = 1
    if i >= len(msgs) or msgs[i].get("role") != "user":
        err("first non-system message must be a user message")
    pending: list[str] = []  # tool_call ids awaiting a tool message
    seen_ids: set[str] = set()
    for k, m in enumerate(msgs):
        where = f"messages[{k}]"
        if not isinstance(m, dict):
            err(where + " is not an object")
            continue
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            err(where + f" has bad role {role!r}")
            continue
        if role == "system" and k != 0:
            err(where + ": system message only allowed first")
        content = m.get("content")
        if role == "user" and (not isinstance(content, str) or not content.strip()):
            err(where + ": user content must be a non-empty string")
        if role in ("user", "assistant") and pending:
            err(where + f": {role} before all tool calls were answered: {pending}")
            pending = []
        if role == "assistant":
            tcs = m.get("tool_calls")
            content = m.get("content")
            if content is not None and not isinstance(content, str):
                err(where + ": assistant content must be string or null")
            if not tcs:
                if not content:
                    err(where + ": assistant message with neither content nor tool_calls")
                continue
            if not isinstance(tcs, list):
                err(where + ": tool_calls must be a list")
                continue
            for j, tc in enumerate(tcs):
                w = f"{where}.tool_calls[{j}]"
                if not isinstance(tc, dict):
                    err(w + " is not an object")
                    continue
                tid = tc.get("id")
                if not isinstance(tid, str) or not tid:
                    err(w + ": missing id")
                elif tid in seen_ids:
                    err(w + f": duplicate tool_call id {tid}")
                else:
                    seen_ids.add(tid)
                    pending.append(tid)
                if tc.get("type") != "function":
                    err(w + ": type must be 'function'")
                fn = tc.get("function")
                if not isinstance(fn, dict):
                    err(w + ": missing function object")
                    continue
                if not isinstance(fn.get("name"), str) or not re.match(
                    r"^[A-Za-z0-9_-]{1,64}$", fn["name"]
                ):
                    err(w + ": bad function name {!r}".format(fn.get("name")))
                args = fn.get("arguments")
                if not isinstance(args, str):
                    err(w + ": arguments must be a JSON string")
                else:
                    try:
                        parsed = json.loads(args)
                        if not isinstance(parsed, dict):
                            err(w + ": arguments must encode a JSON object")
                    except ValueError as e:
                        err(w + f": arguments not valid JSON: {e}")
        if role == "tool":
            tid = m.get("tool_call_id")
            if not isinstance(m.get("content"), str):
                err(where + ": tool content must be a string")
            if tid not in pending:
                err(where + f": tool_call_id {tid!r} does not match a pending tool call")
            else:
                pending.remove(tid)
    if pending:
        err(f"unanswered tool calls at end: {pending}")
    if msgs[-1].get("role") != "tool":
        err("conversation must end with a tool message")


def main(path: str | Path) -> int:  # noqa: C901
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    problems: list[str] = []
    if not isinstance(data, list):
        print("top level must be a JSON array")
        return 1
    ids: Counter[str] = Counter()
    for n, case in enumerate(data):
        cid = case.get("id", f"#{n}") if isinstance(case, dict) else f"#{n}"

        def err(msg: str, cid: str = cid) -> None:
            problems.append(f"{cid}: {msg}")

        if not isinstance(case, dict):
            err("case is not an object")
            continue
        for f, t in FIELDS.items():
            if f not in case:
                err(f"missing field {f}")
            elif not isinstance(case[f], t):
                err(f"field {f} must be {t.__name__}")
        extra = set(case) - set(FIELDS)
        if extra:
            err(f"unexpected fields {sorted(extra)}")
        if isinstance(case.get("id"), str):
            ids[case["id"]] += 1
        cat, g = case.get("category"), case.get("grounded")
        if isinstance(cat, str) and isinstance(g, bool):
            if not CATEGORY_RE.match(cat):
                err(f"category {cat!r} is not snake_case")
            if cat.startswith("grounded_") != g:
                err(f"category {cat!r} disagrees with grounded={g}")
        for f in ("answer", "why"):
            if isinstance(case.get(f), str) and not case[f].strip():
                err(f"{f} is empty")
        if isinstance(case.get("answer"), str) and re.search(r"\[tool:", case["answer"]):
            err("answer contains a [tool:...] citation marker")
        if isinstance(case.get("messages"), list):
            check_messages(case["messages"], err)
    for cid, k in ids.items():
        if k > 1:
            problems.append(f"{cid}: duplicate id ({k} times)")

    labels = Counter(c.get("grounded") for c in data if isinstance(c, dict))
    cats = Counter((c.get("grounded"), c.get("category")) for c in data if isinstance(c, dict))
    print(f"cases: {len(data)}")
    print(f"grounded: {labels[True]}  ungrounded: {labels[False]}")
    for label in (True, False):
        print("\n%s categories:" % ("grounded" if label else "ungrounded"))
        for (g, cat), k in sorted(cats.items(), key=lambda x: (-x[1], str(x[0][1]))):
            if g is label:
                print(f"  {cat:<30} {k}")
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
