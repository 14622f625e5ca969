"""Identifiers as they appear in answers and tool outputs: ids, ARNs, IPs, hosts, emails.

The same patterns find the answer's identifier claims and the outputs'
identifiers (so that an answer's ``i-0a1b2c3e`` can be told to be a near miss
of the output's ``i-0a1b2c3d``). Each pattern is a sequence of character
classes whose repetitions are bounded or separated by a delimiter the class
excludes, so no pattern backtracks more than a bounded amount per position.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from llm_gateway.grounding.model import Kind
from llm_gateway.grounding.normalize import word_set

_AWS_PREFIXES = (
    "i|vol|sg|subnet|vpc|ami|snap|eni|igw|rtb|acl|nat|eipalloc|lt|r|pcx|tgw|vpce|fs|db|cluster"
)
# Hosts need a familiar top-level domain or three labels, so "Node.js" is no host.
TLDS = word_set(
    "com org net io dev app ai co uk de fr eu nl se no ch es it us ca au jp cn in be at "
    "pl internal local localhost cloud aws gov edu info me xyz sh tech site svc cluster "
    "example test invalid corp lan"
)

PATTERNS: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    ("arn", re.compile(r"arn:aws[a-z-]{0,20}:[a-z0-9-]{0,40}:[a-z0-9-]{0,40}:\d{0,12}:"
                       r"[A-Za-z0-9/_+=.,@:*-]{1,400}")),
    ("email", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@"
                         r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
                         r"(?![A-Za-z0-9-])")),
    ("identifier", re.compile(r"(?<![A-Za-z0-9-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                              r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![A-Za-z0-9-])")),
    ("identifier", re.compile(rf"(?<![A-Za-z0-9-])(?:{_AWS_PREFIXES})-[0-9a-f]{{8,17}}"
                              r"(?![A-Za-z0-9-])")),
    # 10.0.1.23, 10.0.0.0/16, 127.0.0.1:8080 (the port is part of the address claimed)
    ("ip", re.compile(r"(?<![0-9.])(?:\d{1,3}\.){3}\d{1,3}(?:/\d{1,2}|:\d{1,5})?"
                      r"(?![0-9]|\.[0-9])")),
    ("ip", re.compile(r"(?<![0-9A-Za-z:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
                      r"(?![0-9A-Za-z:])")),
    # versions: 1.14.2, v2.3.0-rc1 (a two-part version is a number)
    ("identifier", re.compile(r"(?<![A-Za-z0-9_.])v?\d{1,4}\.\d{1,4}\.\d{1,4}"
                              r"(?:-[A-Za-z0-9.]{1,20})?(?![A-Za-z0-9_]|\.[0-9])")),
    ("host", re.compile(r"(?<![A-Za-z0-9_@.-])(?:[A-Za-z0-9][A-Za-z0-9-]{0,62}\.){1,10}"
                        r"[A-Za-z]{2,24}(?![A-Za-z0-9_-])")),
    # ORD-1234, OPS-4521, INV-20240301, SKU-88
    ("identifier", re.compile(r"(?<![A-Za-z0-9_-])[A-Z][A-Z0-9]{0,9}-\d{1,12}(?![A-Za-z0-9_-])")),
    # api-7d9f8c6b5-x2kqp, us-east-1, cus_77, build-8812 (only with a digit: see below)
    ("identifier", re.compile(r"(?<![A-Za-z0-9_./@-])[A-Za-z][A-Za-z0-9]{0,40}"
                              r"(?:[-_][A-Za-z0-9]{1,40}){1,8}(?![A-Za-z0-9_@-])")),
    # 1Z999AA10123456784, 003HP00002XKQ9: long runs of capitals and digits (tracking numbers)
    ("identifier", re.compile(r"(?<![A-Za-z0-9_-])(?=[0-9]*[A-Z])(?=[A-Z]*[0-9])[A-Z0-9]{10,40}"
                              r"(?![A-Za-z0-9_-])")),
    # AdministratorAccess, AmazonS3ReadOnlyAccess: a CamelCase name of a policy, a role, a class
    ("identifier", re.compile(r"(?<![A-Za-z0-9_-])[A-Z][a-z]{2,}(?:[A-Z0-9][a-z0-9]{1,}){1,8}"
                              r"(?=[A-Za-z0-9]{0,20}(?![A-Za-z0-9_-]))[A-Za-z0-9]{0,20}"
                              r"(?![A-Za-z0-9_-])")),
    # LH400, Z25, R3: capitals and digits (see _NOT_IDS for the product names left out)
    ("identifier", re.compile(r"(?<![A-Za-z0-9_-])[A-Z]{1,3}\d{1,6}[A-Z]?(?![A-Za-z0-9_-])")),
    # t3.micro, m5.large
    ("identifier", re.compile(r"(?<![A-Za-z0-9_.-])[a-z]{1,4}\d{1,2}[a-z]{0,3}\.[a-z0-9]{2,12}"
                              r"(?![A-Za-z0-9_-])")),
)  # fmt: skip
_NOT_IDS = word_set(
    "S3 EC2 K8S P50 P90 P95 P99 P999 H1 H2 Q1 Q2 Q3 Q4 IPV4 IPV6 HTTP2 HTTP3 MP3 MP4 A4 "
    "UTF8 UTF16 SHA1 SHA256 MD5 TLS1 OAUTH2 X86 X64 ARM64 G5 5G 4G 3G 2FA B2B B2C"
)
_PERIOD_OF_YEAR = re.compile(r"(?:mid|early|late|pre|post|end|start)-(?:19|20)\d\d")
_PROSE = word_set("to of in on the a an by per and or vs at up from")
# AWS and GCP regions: us-east-1, europe-west1 (named by their zones too: us-east-1a).
REGION = re.compile(r"[a-z]{2,12}(?:-gov)?-[a-z]{4,12}-?\d{1,2}")
PR_NUMBER = re.compile(r"(?<![A-Za-z0-9&#])#(\d{1,9})(?![0-9A-Za-z])")
# +1 415-555-0142, (415) 555-0142, +44 20 7946 0958: compared by their digits
PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ ]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}"
    r"(?![\w-]|\.\d)"
)
BACKTICKED = re.compile(r"`([A-Za-z0-9][^`\s]{0,99})`")


class Spans:
    """Disjoint spans of a text, kept sorted, so an overlap test costs a bisection."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_right(self._starts, start)
        if i and self._ends[i - 1] > start:
            return True
        return i < len(self._starts) and self._starts[i] < end

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._ends.insert(i, end)


@dataclass(frozen=True, slots=True)
class Found:
    """An identifier's span, kind and its comparable form."""

    start: int
    end: int
    kind: Kind
    value: str  # lower-cased; an IPv6 address compressed


def normal_ip(text: str) -> str | None:
    """The address in one canonical form (with its port or prefix), or None if it is none."""
    address, suffix = text, ""
    for mark in ("/", ":"):
        if mark in text and text.count(":") <= 1:
            address, _, rest = text.partition(mark)
            suffix = mark + rest
            break
    try:
        return ipaddress.ip_address(address).compressed + suffix
    except ValueError:
        return None


def _accept(kind: Kind, text: str) -> str | None:
    if kind == "ip":
        return normal_ip(text)
    if kind == "arn":
        return text.rstrip(".,:;").lower()
    if kind == "host":
        labels = text.lower().split(".")
        if labels[-1] not in TLDS and len(labels) < 3:
            return None
        if all(label.isdigit() for label in labels[:-1]):
            return None
        return text.lower()
    if kind == "identifier":
        camel = len(text) >= 12 and text.isalnum() and sum(c.isupper() for c in text) >= 2
        if not (any(c.isdigit() for c in text) or camel) or text.upper() in _NOT_IDS:
            return None
        segments = re.split(r"[-_]", text.lower())
        if len(segments) > 1 and any(s in _PROSE for s in segments):
            return None  # "noon-to-6pm", "end-to-end": prose, not an id
        if _PERIOD_OF_YEAR.fullmatch(text.lower()):
            return None  # "mid-2025", "early-2024": a time of a year, not an id
    return text.lower()


def _phones(text: str, taken: Spans, found: list[Found]) -> None:
    if not any(c in text for c in " -.("):
        return
    for match in PHONE.finditer(text):
        start, end = match.span()
        digits = re.sub(r"\D", "", match.group())
        if 10 <= len(digits) <= 15:
            taken.add(start, end)
            found.append(Found(start, end, "identifier", "tel:" + digits))


def find_identifiers(text: str) -> Iterator[Found]:
    """Every identifier in ``text``, longest first where they overlap."""
    taken = Spans()
    found: list[Found] = []
    _phones(text, taken, found)
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span()
            raw = match.group()
            if kind == "arn":
                stripped = raw.rstrip(".,:;")
                end = start + len(stripped)
                raw = stripped
            if taken.overlaps(start, end):
                continue
            value = _accept(kind, raw)
            if value is None:
                continue
            taken.add(start, end)
            found.append(Found(start, end, kind, value))
    for match in BACKTICKED.finditer(text):
        start, end = match.span(1)
        if taken.overlaps(start, end):
            continue
        taken.add(start, end)
        found.append(Found(start, end, "identifier", match[1].lower()))
    found.sort(key=lambda f: f.start)
    yield from found


def within_distance(a: str, b: str, limit: int) -> bool:
    """Whether the edit distance of ``a`` and ``b`` is at most ``limit`` (banded, so cheap)."""
    if abs(len(a) - len(b)) > limit:
        return False
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [limit + 1] * len(b)
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            cost = 0 if ca == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
        if min(current) > limit:
            return False
        previous = current
    return previous[len(b)] <= limit
