"""``check``: is an agent's answer grounded in the results of the tools it called?

Pure and self-contained (no I/O, no configuration): the pipeline and the API
build a :class:`Conversation` from the request, :class:`Options` from the
config file, and act on the :class:`Verdict`.

The verdict fails (``grounded`` false) on any of:

- ``unsupported_claims``: more unsupported claims than ``max_unsupported_claims``
  (when ``check_tool_output_match``);
- ``contradiction``: any claim the tool outputs contradict (when
  ``detect_contradictions``; otherwise contradicted claims count as unsupported);
- ``speculative_language``: a built-in hedge ("probably", "seems to", ...);
- ``blocked_phrase``: a configured phrase;
- ``citation``: a citation of an unknown tool, or (with ``require_tool_citation``)
  a claim not covered by a citation of a tool whose output supports it;
- ``confidence``: the score below ``confidence_threshold``; the score is
  exp(mean token logprob) when logprobs are given, else the share of claims
  supported or derived (1.0 with no claims).

Hedges are only findings when a tool result exists to be certain from, and a
conversation without tool results is grounded with no claims: there is
nothing to check it against.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from llm_gateway.grounding import support
from llm_gateway.grounding.citations import Citation, find_citations, sentence_of, sentences
from llm_gateway.grounding.claims import STOPWORDS, Candidate, extract
from llm_gateway.grounding.evidence import Evidence, build
from llm_gateway.grounding.model import (
    BLOCKED,
    CITATION,
    CONFIDENCE,
    CONTRADICTION,
    SPECULATIVE,
    UNSUPPORTED,
    Claim,
    Conversation,
    Options,
    Uncited,
    Verdict,
)
from llm_gateway.grounding.speculation import find_phrases
from llm_gateway.grounding.states import state_class
from llm_gateway.grounding.support import Judgement

CHECKER_ERROR = "checker_error"


def check(
    conversation: Conversation,
    answer: str,
    options: Options = Options(),  # noqa: B008 - frozen, so one shared default is safe
    logprobs: Sequence[float] | None = None,
) -> Verdict:
    """The verdict on ``answer`` given the conversation's tool results; never raises."""
    try:
        return _check(conversation, answer, options, logprobs)
    except Exception:  # noqa: BLE001 - a checker bug must not take the request down
        return Verdict(False, 0.0, (), 0, 0, (), (), (CHECKER_ERROR,), False)


def _check(
    conversation: Conversation,
    answer: str,
    options: Options,
    logprobs: Sequence[float] | None,
) -> Verdict:
    if not conversation.tools:
        return Verdict(True, 1.0, (), 0, 0, (), (), (), False)
    truncated = len(answer) > options.max_answer_chars
    answer = answer[: options.max_answer_chars]
    evidence = build(conversation, options.max_evidence_chars)
    truncated = truncated or evidence.truncated
    text, citations = find_citations(answer)
    spans = sentences(answer, citations)
    candidates = extract(text)
    claims = _judge_all(candidates, evidence, spans, answer, text)
    claims += _flags(evidence, answer, text)
    claims.sort(key=lambda c: c[0].start)

    unsupported = sum(1 for c, _ in claims if c.status == "unsupported")
    contradicted = sum(1 for c, _ in claims if c.status == "contradicted")
    phrases = tuple(
        p
        for p in find_phrases(text, options.flag_speculative_language, options.blocked_phrases)
        if not (p.source == "speculative" and _renders_probability(p.phrase, evidence))
    )
    uncited = _citations(claims, citations, spans, evidence, options.require_tool_citation)

    failed: list[str] = []
    counted = unsupported + (0 if options.detect_contradictions else contradicted)
    if options.check_tool_output_match and counted > options.max_unsupported_claims:
        failed.append(UNSUPPORTED)
    if options.detect_contradictions and contradicted:
        failed.append(CONTRADICTION)
    if any(p.source == "speculative" for p in phrases):
        failed.append(SPECULATIVE)
    if any(p.source == "blocked" for p in phrases):
        failed.append(BLOCKED)
    if uncited:
        failed.append(CITATION)
    score = support.exp_mean(logprobs) if logprobs else None
    if score is None:
        good = sum(1 for c, _ in claims if c.status in ("supported", "derived"))
        score = good / len(claims) if claims else 1.0
    if score < options.confidence_threshold:
        failed.append(CONFIDENCE)
    return Verdict(
        grounded=not failed,
        score=score,
        claims=tuple(c for c, _ in claims),
        unsupported=unsupported,
        contradictions=contradicted,
        speculative=phrases,
        uncited=uncited,
        failed=tuple(failed),
        truncated=truncated,
    )


_PROBABILITY_WORDS = frozenset({"probability", "prob", "chance", "likelihood", "pop"})


def _renders_probability(phrase: str, evidence: Evidence) -> bool:
    """ "very likely" for a 90% forecast: the tool's own answer is a probability, not a fact."""
    if phrase.lower() not in ("likely", "unlikely"):
        return False
    return any(n.source >= 0 and n.words & _PROBABILITY_WORDS for n in evidence.numbers[:5000])


_FEATURE_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,40}")
_DENIALS = frozenset(
    {
        "not",
        "no",
        "without",
        "isn't",
        "aren't",
        "never",
        "non",
        "disabled",
        "off",
        "false",
        "single",
    }
)


def _flags(evidence: Evidence, answer: str, text: str) -> list[tuple[Claim, Judgement]]:
    """A boolean feature of the tools' (``MultiAZ: false``) that the answer claims, or denies
    when the tools say it is on: contradicted."""
    if not evidence.flags:
        return []
    found: list[tuple[Claim, Judgement]] = []
    words = list(_FEATURE_WORD.finditer(text))
    index = 0
    while index < len(words):
        size = _flag_at(evidence, text, words, index)
        if not size:
            index += 1
            continue
        start, end = words[index].start(), words[index + size - 1].end()
        source, values = evidence.flags[
            "".join(w.group() for w in words[index : index + size]).lower()
        ]
        before = re.findall(r"[A-Za-z']+", text[max(0, start - 30) : start])
        rest = re.split(r"[,.;:()]", text[end : end + 60], maxsplit=1)[0]
        after = re.findall(r"[A-Za-z']+", rest)[:4]  # "Multi-AZ is off"
        denied = bool({w.lower() for w in (*before[-3:], *after)} & _DENIALS)
        if len(values) == 1 and (True in values) == denied:
            shown = "true" if True in values else "false"
            judgement = Judgement("contradicted", source, shown,
                                  f"{_where(evidence, source)} it is {shown}")  # fmt: skip
            claim = Claim(start, end, answer[start:end], "state", "contradicted",
                          evidence.tool_id(source), shown, judgement.explanation)  # fmt: skip
            found.append((claim, judgement))
        index += size
    return found


def _flag_at(evidence: Evidence, text: str, words: list[re.Match[str]], index: int) -> int:
    """How many words from ``index`` (joined by a hyphen or nothing) name a flag; 0 if none."""
    for size in (3, 2, 1):
        part = words[index : index + size]
        if len(part) < size:
            continue
        if any(text[a.end() : b.start()] not in ("-", "") for a, b in pairwise(part)):
            continue
        name = "".join(w.group() for w in part).lower()
        if len(name) >= 5 and name in evidence.flags:
            return size
    return 0


def _where(evidence: Evidence, source: int) -> str:
    return f"in the output of {evidence.tool_id(source) or 'a tool'}"


def _judge_all(
    candidates: list[Candidate],
    evidence: Evidence,
    spans: list[tuple[int, int]],
    answer: str,
    text: str,
) -> list[tuple[Claim, Judgement]]:
    for candidate in candidates:
        candidate.sentence = sentence_of(spans, candidate.start)
    judged: list[tuple[Claim, Judgement]] = []
    named = mentions(text, evidence)
    for index, candidate in enumerate(candidates):
        judgement = _judge(candidate, candidates[:index], evidence, text, named)
        if judgement is None:
            continue
        if _is_threshold(candidate) and judgement.status in ("unsupported", "contradicted"):
            continue  # "the only other charge over $100": a round bound the answer picked
        if (
            judgement.status == "unsupported"
            and candidate.kind != "email"  # "you can reach her at ...": a contact is a fact
            and _is_advice(text, (spans[candidate.sentence][0], candidate.start))
        ):
            continue  # "I'd raise it to 8 replicas": a suggestion, not a report of the tools
        claim = Claim(
            start=candidate.start,
            end=candidate.end,
            text=answer[candidate.start : candidate.end],
            kind=candidate.kind,
            status=judgement.status,
            tool_call_id=evidence.tool_id(judgement.source)
            if judgement.source is not None
            else None,
            found=judgement.found,
            explanation=judgement.explanation,
        )
        judged.append((claim, judgement))
    return judged


_MENTION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/@-]{1,119}")
_MAX_SCOPES = 3  # a word naming more objects than this names none in particular


@dataclass(frozen=True, slots=True)
class Mention:
    """A word of the answer that names one of the tools' objects (an id, a row's name)."""

    start: int
    end: int
    scopes: list[tuple[int, str]]


def mentions(text: str, evidence: Evidence) -> list[Mention]:
    """The answer's words that are values in the tool outputs, with the objects they name."""
    found: list[Mention] = []
    for match in _MENTION.finditer(text):
        token = match.group().rstrip(".,:;").lower()
        if len(token) < 3 or token in STOPWORDS or state_class(token) is not None:
            continue
        scopes = evidence.entities.get(token)
        if scopes and len(scopes) <= _MAX_SCOPES:
            found.append(Mention(match.start(), match.start() + len(token), scopes))
    return found


def _clause_mentions(
    candidate: Candidate, earlier: list[Candidate], named: list[Mention], text: str
) -> list[list[tuple[int, str]]]:
    """What a state word is said of: the objects named before it in its clause, nearest first.

    A count between them ("ORD-2003 is processing; two have been delivered")
    means the state is said of the counted things, not of the id.
    """
    barrier = 0
    for other in reversed(earlier):
        if other.kind in ("number", "count") and other.sentence == candidate.sentence:
            barrier = other.end
            break
    limit = max(barrier, text.rfind(";", 0, candidate.start) + 1)
    before = [m for m in named if limit <= m.start and m.end <= candidate.start]
    before = [m for m in before if _same_sentence(text, m.end, candidate.start)]
    return [m.scopes for m in reversed(before)]


_VERSUS = re.compile(r"(?<![A-Za-z])(?:vs|versus|than|compared)(?![A-Za-z])", re.IGNORECASE)


def _nearest_mention(
    candidate: Candidate, named: list[Mention], text: str
) -> list[tuple[int, str]]:
    """The object a number's clause names, nearest on either side (within the clause): its
    scopes, "arguments" for a value of a call's arguments (the call it names)."""
    best: tuple[int, list[tuple[int, str]]] | None = None
    for m in named:
        if m.end <= candidate.start:
            gap, between = candidate.start - m.end, text[m.end : candidate.start]
        elif m.start >= candidate.end and candidate.kind != "count":
            # "three customers are Globex": a count is of its noun, not of what follows
            gap, between = m.start - candidate.end, text[candidate.end : m.start]
        else:
            continue
        if (
            between.count("(") == 1
            and between.strip().startswith("(")
            and not _VERSUS.search(between)
        ):
            between = between.replace("(", " ")  # "Hartwell & Sons (customer 20871)"
        if gap > 40 or any(c in between for c in ",;:.()\n\u2014\u2013") or " and " in between:
            continue
        # An object's row over a word of the call's arguments ("customer" in the query)
        rank = gap + (1000 if all(scope in ("", "arguments") for _, scope in m.scopes) else 0)
        if best is None or rank < best[0]:
            best = (rank, m.scopes)
    if best is None:
        return []
    return best[1]


_ADVICE = re.compile(
    r"(?<![A-Za-z])(?:you (?:could|can|may want|might want|should|may wish)|i'd|i would|"
    r"i (?:recommend|suggest)|consider|if you (?:want|like|need|'d like)|let me know|"
    r"we could|it may be worth|recommend)(?![A-Za-z])",
    re.IGNORECASE,
)


def _is_threshold(candidate: Candidate) -> bool:
    """A round number after "over", "under", "at least" in a clause that is not negated."""
    if "bound" not in candidate.cues or "not" in candidate.cues:
        return False
    if any(w in ("never", "no", "not") for w in candidate.before):
        return False  # "it never went above 60%": a claim about every value
    value = abs(getattr(candidate.value, "value", 0.0))
    if value <= 0 or value != int(value):
        return False
    digits = str(int(value)).rstrip("0")
    return len(digits) <= 2


def _is_advice(text: str, span: tuple[int, int]) -> bool:
    """Whether the sentence suggests what to do rather than reports what the tools said (up
    to the claim: "It has X and Y; you should remove Y" reports Y first)."""
    return _ADVICE.search(text, span[0], span[1]) is not None


def _same_sentence(text: str, start: int, end: int) -> bool:
    between = text[start:end]
    return not any(mark in between for mark in (". ", "! ", "? ", "\n"))


def _judge(
    candidate: Candidate,
    earlier: list[Candidate],
    evidence: Evidence,
    text: str,
    named: list[Mention],
) -> Judgement | None:
    kind = candidate.kind
    if kind in ("number", "count", "money", "percent"):
        entity = _nearest_mention(candidate, named, text)
        return support.judge_number(candidate, evidence, entity)
    if kind == "date":
        return support.judge_date(candidate, evidence)
    if kind == "time":
        timed = support.judge_time(candidate, evidence)
        if timed.status != "supported":
            return timed
        subject = _nearest_mention(candidate, [m for m in named if m.end <= candidate.start], text)
        return support.other_item(candidate, evidence, subject, timed.found) or timed
    if kind == "state":
        scopes = _clause_mentions(candidate, earlier, named, text)
        return support.judge_state(candidate, evidence, scopes)
    if "slug" in candidate.cues:
        judged = support.judge_identifier(candidate, evidence)
        if judged.status != "supported":
            return support.near_name(candidate, evidence)  # else no claim worth a finding
    elif kind == "name":
        judged = support.judge_name(candidate, evidence)
    else:
        judged = support.judge_identifier(candidate, evidence)
    if judged.status == "supported" and kind != "name":  # a name is a peer, not an attribute
        subject = _nearest_mention(candidate, [m for m in named if m.end <= candidate.start], text)
        return support.other_item(candidate, evidence, subject) or judged
    return judged


def _citations(
    claims: list[tuple[Claim, Judgement]],
    citations: list[Citation],
    spans: list[tuple[int, int]],
    evidence: Evidence,
    required: bool,
) -> tuple[Uncited, ...]:
    """Citations of unknown tools; with ``required``, supported claims no citation covers."""
    refs: dict[str, int] = {}
    for index, (call_id, name) in enumerate(evidence.names):
        for ref in (call_id, name):
            if ref:
                refs.setdefault(ref, index)
                refs.setdefault(ref.lower(), index)
    found: list[Uncited] = []
    cited: dict[int, set[int]] = {}
    for citation in citations:
        tool = refs.get(citation.ref, refs.get(citation.ref.lower()))
        if tool is None:
            found.append(
                Uncited(citation.start, citation.end, citation.ref, "unknown_tool", citation.ref)
            )
            continue
        # Every tool of that name: a name cited for two calls of one tool covers both.
        tools = {i for i, (c, n) in enumerate(evidence.names) if citation.ref in (c, n)} | {tool}
        cited.setdefault(sentence_of(spans, citation.start), set()).update(tools)
    if required:
        for claim, judgement in claims:
            if claim.status not in ("supported", "derived"):
                continue
            if judgement.source is not None and judgement.source < 0 and not judgement.sources:
                continue  # the question's or the context's own words need no citation
            here = cited.get(sentence_of(spans, claim.start), set())
            if not here:
                found.append(Uncited(claim.start, claim.end, claim.text, "missing", None))
            elif judgement.sources and not judgement.sources & here:
                ref = evidence.tool_id(min(here))
                found.append(Uncited(claim.start, claim.end, claim.text, "wrong_tool", ref))
    found.sort(key=lambda u: u.start)
    return tuple(found)
