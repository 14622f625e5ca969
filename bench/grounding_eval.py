"""The grounding checker on a labelled set it was not written against.

Three sets, each written by someone who had seen neither the checker nor
the other sets (OpenAI messages with tool calls and results, an answer, and
whether it is grounded): ``bench/grounding_cases.json`` (187 cases), which
the checker was then tuned on, so its figure flatters; and
``bench/grounding_cases_2.json`` (301 cases) and ``bench/grounding_cases_3.json``
(174 cases), held out from all tuning, which are the honest ones. Tune on
one of them and it stops being held out: say so here. Each case
goes through the same path as the grounding API
(the OpenAI front door's parser, then :func:`conversation_of` and
:func:`check` with the default options), and the table says how the verdict's
``grounded`` agrees with the label: recall on ungrounded answers, the share
of grounded answers flagged, and the misses per category.

Run: ``python bench/grounding_eval.py [--cases FILE ...] [--misses]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from llm_gateway.api import openai
from llm_gateway.grounding import Conversation, check
from llm_gateway.grounding.from_chat import conversation_of

SETS = {
    "grounding_cases.json": "written blind, then tuned on",
    "grounding_cases_2.json": "written blind, held out from tuning",
    "grounding_cases_3.json": "written blind, held out from tuning",
}


def judge(case: dict[str, Any]) -> bool:
    """Whether the checker calls the case's answer grounded."""
    chat = openai.parse_request(orjson.dumps({"model": "eval", "messages": case["messages"]}))
    conversation = conversation_of(chat) or Conversation(())
    return check(conversation, case["answer"]).grounded


def report(path: Path, misses: bool) -> None:
    cases = json.loads(path.read_text())
    bad = [c for c in cases if not c["grounded"]]
    good = [c for c in cases if c["grounded"]]
    caught = [c for c in bad if not judge(c)]
    flagged = [c for c in good if not judge(c)]
    recall = len(caught) / len(bad) if bad else 1.0
    fp_rate = len(flagged) / len(good) if good else 0.0
    precision = len(caught) / (len(caught) + len(flagged)) if caught or flagged else 1.0
    print(f"Grounding checker on {path.name} ({len(cases)} cases, {SETS.get(path.name, '')})")
    print()
    print("| ungrounded caught (recall) | grounded flagged (FP rate) | precision |")
    print("|---:|---:|---:|")
    print(
        f"| {len(caught)}/{len(bad)} = {recall:.3f} | {len(flagged)}/{len(good)} = "
        f"{fp_rate:.3f} | {precision:.3f} |"
    )
    missed = Counter(c["category"] for c in bad if c not in caught)
    wrongly = Counter(c["category"] for c in flagged)
    if missed or wrongly:
        print()
        print("| category | wrong verdicts |")
        print("|---|---:|")
        for category, n in sorted((missed + wrongly).items(), key=lambda kv: -kv[1])[:12]:
            print(f"| {category} | {n} |")
    if misses:
        for c in [x for x in bad if x not in caught] + flagged:
            print(f"- {c['id']} ({'grounded' if c['grounded'] else 'ungrounded'}): {c['why']}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).parent
    parser.add_argument("--cases", type=Path, nargs="+", default=[here / n for n in SETS])
    parser.add_argument("--misses", action="store_true", help="list every wrong verdict")
    args = parser.parse_args()
    for path in args.cases:
        report(path, args.misses)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
