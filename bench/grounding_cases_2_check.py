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
from pathlib import Path

DEFAULT = Path(__file__).with_name("grounding_cases_2.json")
FIELDS = {"id": str, "category": str, "messages": list, "answer": str,
          "grounded": bool, "why": str}
CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def check_messages(msgs, err):
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
    pending = []          # tool_call ids awaiting a tool message
    seen_ids = set()
    for k, m in enumerate(msgs):
        where = "messages[%d]" % k
        if not isinstance(m, dict):
            err(where + " is not an object")
            continue
        role = m.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            err(where + " has bad role %r" % role)
            continue
        if role == "system" and k != 0:
            err(where + ": system message only allowed first")
        if role == "user":
            if not isinstance(m.get("content"), str) or not m["content"].strip():
                err(where + ": user content must be a non-empty string")
        if role in ("user", "assistant") and pending:
            err(where + ": %s before all tool calls were answered: %s" % (role, pending))
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
                w = "%s.tool_calls[%d]" % (where, j)
                if not isinstance(tc, dict):
                    err(w + " is not an object")
                    continue
                tid = tc.get("id")
                if not isinstance(tid, str) or not tid:
                    err(w + ": missing id")
                elif tid in seen_ids:
                    err(w + ": duplicate tool_call id %s" % tid)
                else:
                    seen_ids.add(tid)
                    pending.append(tid)
                if tc.get("type") != "function":
                    err(w + ": type must be 'function'")
                fn = tc.get("function")
                if not isinstance(fn, dict):
                    err(w + ": missing function object")
                    continue
                if not isinstance(fn.get("name"), str) or not re.match(r"^[A-Za-z0-9_-]{1,64}$", fn["name"]):
                    err(w + ": bad function name %r" % fn.get("name"))
                args = fn.get("arguments")
                if not isinstance(args, str):
                    err(w + ": arguments must be a JSON string")
                else:
                    try:
                        parsed = json.loads(args)
                        if not isinstance(parsed, dict):
                            err(w + ": arguments must encode a JSON object")
                    except ValueError as e:
                        err(w + ": arguments not valid JSON: %s" % e)
        if role == "tool":
            tid = m.get("tool_call_id")
            if not isinstance(m.get("content"), str):
                err(where + ": tool content must be a string")
            if tid not in pending:
                err(where + ": tool_call_id %r does not match a pending tool call" % tid)
            else:
                pending.remove(tid)
    if pending:
        err("unanswered tool calls at end: %s" % pending)
    if msgs[-1].get("role") != "tool":
        err("conversation must end with a tool message")


def main(path):
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    problems = []
    if not isinstance(data, list):
        print("top level must be a JSON array")
        return 1
    ids = Counter()
    for n, case in enumerate(data):
        cid = case.get("id", "#%d" % n) if isinstance(case, dict) else "#%d" % n

        def err(msg, cid=cid):
            problems.append("%s: %s" % (cid, msg))
        if not isinstance(case, dict):
            err("case is not an object")
            continue
        for f, t in FIELDS.items():
            if f not in case:
                err("missing field %s" % f)
            elif not isinstance(case[f], t):
                err("field %s must be %s" % (f, t.__name__))
        extra = set(case) - set(FIELDS)
        if extra:
            err("unexpected fields %s" % sorted(extra))
        if isinstance(case.get("id"), str):
            ids[case["id"]] += 1
        cat, g = case.get("category"), case.get("grounded")
        if isinstance(cat, str) and isinstance(g, bool):
            if not CATEGORY_RE.match(cat):
                err("category %r is not snake_case" % cat)
            if cat.startswith("grounded_") != g:
                err("category %r disagrees with grounded=%s" % (cat, g))
        for f in ("answer", "why"):
            if isinstance(case.get(f), str) and not case[f].strip():
                err("%s is empty" % f)
        if isinstance(case.get("answer"), str) and re.search(r"\[tool:", case["answer"]):
            err("answer contains a [tool:...] citation marker")
        if isinstance(case.get("messages"), list):
            check_messages(case["messages"], err)
    for cid, k in ids.items():
        if k > 1:
            problems.append("%s: duplicate id (%d times)" % (cid, k))

    labels = Counter(c.get("grounded") for c in data if isinstance(c, dict))
    cats = Counter((c.get("grounded"), c.get("category")) for c in data if isinstance(c, dict))
    print("cases: %d" % len(data))
    print("grounded: %d  ungrounded: %d" % (labels[True], labels[False]))
    for label in (True, False):
        print("\n%s categories:" % ("grounded" if label else "ungrounded"))
        for (g, cat), k in sorted(cats.items(), key=lambda x: (-x[1], str(x[0][1]))):
            if g is label:
                print("  %-30s %d" % (cat, k))
    if problems:
        print("\n%d problem(s):" % len(problems))
        for p in problems:
            print("  " + p)
        return 1
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else DEFAULT))
