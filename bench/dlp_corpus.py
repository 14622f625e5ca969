"""A labelled DLP corpus, generated offline and deterministically.

Positive samples are templated sentences (chat messages, log lines, JSON,
forms) with structured PII inserted at known offsets, so the gold spans are
exact by construction; hard negatives are the same kinds of text carrying
look-alikes that are *not* PII (UUIDs, hashes, order numbers, timestamps,
versions, non-Luhn card-shaped numbers, invalid SSNs and IBANs, code). The
entity names are Presidio's, so both engines are scored against one key.

The seed is fixed; the same Faker version gives the same corpus, byte for byte.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from faker import Faker

from bench import dlp_values as v

SEED = 20_240_615
ENTITIES = (
    "CREDIT_CARD",
    "US_SSN",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "IBAN_CODE",
    "MAC_ADDRESS",
)


@dataclass(frozen=True, slots=True)
class Span:
    entity: str
    start: int
    end: int
    value: str


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    spans: tuple[Span, ...]
    kind: Literal["positive", "negative"]
    family: str  # e.g. "CREDIT_CARD/amex", "negative/uuid"


Value = tuple[str, str]  # (entity, text); entity "" for a hard negative
Generator = Callable[[random.Random], str]

# --- templates: [V] is the inserted value, [field] a Faker filler -----------------

TEMPLATES: dict[str, tuple[str, ...]] = {
    "CREDIT_CARD": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "Please charge [name]'s card [V] for the [product] renewal.",
        "card number: [V], exp 09/27",
        "[name] paid with [V] yesterday and wants a receipt.",
        "Why was the payment with [V] declined at [company]?",
        "Billing\nName: [name]\nCard: [V]\nAmount: [amount]",
        '{"customer": "[name]", "pan": "[V]", "amount": "[amount]"}',
        "Refund the [amount] to the card ending in [V] please",
        "I typed [V] into the checkout form and it hung.",
    ),
    "US_SSN": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "My SSN is [V], can you fill in the W-2 form for me?",
        "Employee [name], social security number [V], starts Monday.",
        "ssn: [V]",
        "Please verify [name] (SSN [V]) before the background check.",
        '{"name": "[name]", "ssn": "[V]", "dob": "[date]"}',
        "Social Security No. [V] belongs to the new hire at [company].",
    ),
    "EMAIL_ADDRESS": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "Send the contract to [V] by Friday.",
        "Reply-To: [V]",
        "[name] <[V]> wrote: can we move the call?",
        "Please add [V] to the mailing list for [company].",
        '{"user": "[name]", "email": "[V]"}',
        "Contact [V] for access to the [product] dashboard.",
        '<a href="mailto:[V]">write to us</a>',
    ),
    "PHONE_NUMBER": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "Call me back on [V] after 5pm.",
        "[name]'s mobile: [V]",
        "You can reach the [company] front desk at [V].",
        "phone=[V]; name=[name]",
        "Please text [V] when the delivery arrives.",
        "Emergency contact: [name], tel. [V]",
    ),
    "IP_ADDRESS": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "The requests came from [V] at 03:14 UTC.",
        "Block [V] on the firewall, it keeps scanning us.",
        "ssh admin@[V] -p 22",
        "client_ip=[V] status=403 path=/admin",
        "The database listens on [V], port 5432.",
        "[name] could not ping [V] from the office network.",
    ),
    "IBAN_CODE": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "Please wire the [amount] to IBAN [V] today.",
        "Bank details for [name]: [V]",
        "IBAN: [V] (account holder [company])",
        "Pay the invoice into [V] before the end of the month.",
        '{"beneficiary": "[name]", "iban": "[V]"}',
        "Our new account is [V], please update your records.",
    ),
    "MAC_ADDRESS": (
        "[name];[V];[company]",  # a CSV row: no context words at all
        "The laptop's MAC address is [V].",
        "Whitelist device [V] on the guest network.",
        "DHCP lease: hwaddr [V] for [name]'s phone",
        "ether [V] txqueuelen 1000",
        "Printer on floor 3 has hardware address [V].",
    ),
}

MIXED_TEMPLATES = (
    ("CREDIT_CARD", "EMAIL_ADDRESS", "Customer [name], card [V], receipt to [V]."),
    ("PHONE_NUMBER", "EMAIL_ADDRESS", "Contact [name] at [V] or by email at [V]."),
    ("US_SSN", "PHONE_NUMBER", "Applicant [name]\nSSN: [V]\nPhone: [V]"),
    ("IBAN_CODE", "EMAIL_ADDRESS", "Refund to [V]; confirmation goes to [V]."),
    ("IP_ADDRESS", "MAC_ADDRESS", "Lease granted: ip [V] for hardware address [V]."),
    ("EMAIL_ADDRESS", "IP_ADDRESS", "Login by [V] from [V] was flagged."),
)

NEGATIVE_TEMPLATES: dict[str, tuple[tuple[str, ...], Generator]] = {
    "uuid": (
        ("Request [V] failed with status 500.", "trace_id=[V] span=ok", '{"id": "[V]"}'),
        v.uuid4,
    ),
    "git_sha": (
        ("Reverted commit [V] because it broke the build.", "git cherry-pick [V]"),
        lambda rng: v.hex_string(rng, rng.choice((7, 12, 40))),
    ),
    "md5": (("md5sum: [V]  backup.tar.gz", 'ETag: "[V]"'), lambda rng: v.hex_string(rng, 32)),
    "sha256": (
        ("image digest sha256:[V]", "checksum [V] matches the release"),
        lambda rng: v.hex_string(rng, 64),
    ),
    "order_number": (
        ("Order [V] shipped on [date].", "Where is my order [V]?", "Invoice [V] is overdue."),
        lambda rng: rng.choice(
            (
                f"ORD-{rng.randint(2019, 2025)}-{rng.randint(0, 999999):06d}",
                f"#{rng.randint(10_000, 99_999_999)}",
                f"#{rng.randint(100_000_000, 999_999_999)}",
                f"PO-{rng.randint(4_500_000_000, 4_599_999_999)}",
                f"INV/{rng.randint(2019, 2025)}/{rng.randint(1, 99999):05d}",
            )
        ),
    ),
    "timestamp": (
        ("[V] INFO worker started", "created_at: [V]", "The job ran at [V] and exited 0."),
        lambda rng: rng.choice(
            (
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
                f"2023-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d},"
                f"{rng.randint(0, 999):03d}",
                str(rng.randint(1_600_000_000, 1_760_000_000)),
                str(rng.randint(1_600_000_000_000, 1_760_000_000_000)),
            )
        ),
    ),
    "version": (
        ("Upgrade to [V] before Friday.", "Running build [V] on the CI runners."),
        v.version,
    ),
    "non_luhn_card": (
        ("Card number [V] was rejected as invalid.", "Reference [V] is on the invoice."),
        lambda rng: v.card(
            rng, rng.choice(tuple(v.CARD_BRANDS)), rng.choice(v.CARD_SEPARATORS), valid=False
        ),
    ),
    "invalid_ssn": (("Example SSN format: [V]", "SSN: [V] (test data)"), v.invalid_ssn),
    "invalid_iban": (
        ("IBAN: [V]", "Transfer to [V] failed: checksum error."),
        lambda rng: v.iban(
            rng, rng.choice(tuple(v.IBAN_LAYOUTS)), spaced=rng.random() < 0.5, valid=False
        ),
    ),
    "isbn": (("See ISBN [V] for the reference text.",), v.isbn13),
}

CODE_SNIPPETS = (
    "for i in range(1024):\n    buf[i] = (i * 2654435761) % 4294967296\n",
    "const COLORS = ['#ff00aa', '#00ffcc', '#123456'];\nconst MAX = 0x7fffffff;\n",
    "SELECT id, total FROM orders WHERE created_at > '2024-01-01' LIMIT 500;",
    "matrix = [[1234, 5678], [9012, 3456]]\nprint(matrix[1][0] + 4111)\n",
    "if (retries > 3) { sleep(1500); return ERR_TIMEOUT; } // see issue 48213",
    "docker run -p 8080:80 -e WORKERS=4 nginx:1.25.3",
    "resize(width=1920, height=1080, dpi=300, quality=0.92)",
    "x = 12345678901234; y = x // 97; assert y * 97 <= x",
    "CREATE INDEX idx_events_ts ON events (tenant_id, ts DESC);",
    "git log --oneline -n 20 | grep -v Merge",
    "kubectl scale deployment api --replicas=12 -n prod-eu-1",
    "numbers = list(range(1000000, 1000100, 7))",
)

# --- generators per positive family ----------------------------------------------------


class _Fillers:
    """Faker-made context around the values: names, companies, dates, amounts."""

    PRODUCTS = ("Pro plan", "analytics", "support", "storage", "VPN", "design suite")

    def __init__(self, seed: int) -> None:
        self.fake = Faker(["en_US", "en_GB", "de_DE", "fr_FR"])
        self.fake.seed_instance(seed)

    def field(self, name: str, rng: random.Random) -> str:
        if name == "name":
            return str(self.fake.name())
        if name == "company":
            return str(self.fake.company())
        if name == "date":
            return self.fake.date_of_birth(minimum_age=18, maximum_age=80).isoformat()
        if name == "amount":
            return f"${rng.randint(5, 4999)}.{rng.randint(0, 99):02d}"
        if name == "product":
            return rng.choice(self.PRODUCTS)
        raise KeyError(name)

    def email(self, rng: random.Random) -> str:
        style = rng.randrange(4)
        if style == 0:
            return str(self.fake.email())
        if style == 1:
            return str(self.fake.company_email())
        user = f"{self.fake.first_name()}.{self.fake.last_name()}".lower()
        user = re.sub(r"[^a-z.]", "", user) or "user"
        domain = str(self.fake.domain_name())
        if style == 2:
            return f"{user}+{rng.choice(('billing', 'test', 'news'))}@{domain}"
        return f"{user}@mail.{domain}".upper() if rng.random() < 0.3 else f"{user}@eu.{domain}"


def positive_generators(
    fillers: _Fillers,
) -> dict[str, Callable[[random.Random], tuple[str, str]]]:
    """entity -> generator of (family detail, value)."""

    # brands, regions and countries in turn, so that each is equally represented
    brands = itertools.cycle(v.CARD_BRANDS)
    regions = itertools.cycle(v.PHONE_REGIONS)
    countries = itertools.cycle(v.IBAN_LAYOUTS)

    def card(rng: random.Random) -> tuple[str, str]:
        brand = next(brands)
        return brand, v.card(rng, brand, rng.choice(v.CARD_SEPARATORS))

    def ssn(rng: random.Random) -> tuple[str, str]:
        separator = rng.choice(("-", "-", "-", "-", " ", ""))
        return {"-": "dashes", " ": "spaces", "": "compact"}[separator], v.ssn(rng, separator)

    def phone(rng: random.Random) -> tuple[str, str]:
        region = next(regions)
        return region, v.phone(rng, region)

    def ip(rng: random.Random) -> tuple[str, str]:
        return ("ipv6", v.ipv6(rng)) if rng.random() < 0.4 else ("ipv4", v.ipv4(rng))

    def iban(rng: random.Random) -> tuple[str, str]:
        country = next(countries)
        return country, v.iban(rng, country, spaced=rng.random() < 0.4)

    return {
        "CREDIT_CARD": card,
        "US_SSN": ssn,
        "EMAIL_ADDRESS": lambda rng: ("email", fillers.email(rng)),
        "PHONE_NUMBER": phone,
        "IP_ADDRESS": ip,
        "IBAN_CODE": iban,
        "MAC_ADDRESS": lambda rng: ("mac", v.mac(rng)),
    }


_FIELD = re.compile(r"\[(\w+)\]")


def render(template: str, values: list[Value], fill: Callable[[str], str]) -> Sample:
    """The template with each ``[V]`` replaced by the next value, spans recorded."""
    pieces = template.split("[V]")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"{template!r} needs {len(pieces) - 1} values")
    text, spans = "", []
    for piece, (entity, value) in zip(pieces, [*values, ("", "")], strict=True):
        text += _FIELD.sub(lambda m: fill(m.group(1)), piece)
        if value:
            if entity:
                spans.append(Span(entity, len(text), len(text) + len(value), value))
            text += value
    kind: Literal["positive", "negative"] = "positive" if spans else "negative"
    return Sample(text, tuple(spans), kind, "")


def build_corpus(
    seed: int = SEED, per_entity: int = 120, mixed: int = 60, per_negative: int = 30
) -> list[Sample]:
    """The whole corpus: positives per entity, mixed positives, then hard negatives."""
    rng = random.Random(seed)
    fillers = _Fillers(seed)
    generators = positive_generators(fillers)

    def fill(name: str) -> str:
        return fillers.field(name, rng)

    def value(entity: str) -> tuple[str, str]:
        return generators[entity](rng)

    samples: list[Sample] = []
    for entity in ENTITIES:
        for i in range(per_entity):
            detail, text = value(entity)
            template = TEMPLATES[entity][i % len(TEMPLATES[entity])]
            sample = render(template, [(entity, text)], fill)
            samples.append(_with_family(sample, f"{entity}/{detail}"))
    for i in range(mixed):
        *entities, template = MIXED_TEMPLATES[i % len(MIXED_TEMPLATES)]
        values = [(entity, value(entity)[1]) for entity in entities]
        samples.append(_with_family(render(template, values, fill), "mixed"))
    for family, (templates, make) in NEGATIVE_TEMPLATES.items():
        for i in range(per_negative):
            template = templates[i % len(templates)]
            values = [("", make(rng)) for _ in range(template.count("[V]"))]
            samples.append(_with_family(render(template, values, fill), f"negative/{family}"))
    for i in range(per_negative * 2):
        snippet = CODE_SNIPPETS[i % len(CODE_SNIPPETS)]
        samples.append(Sample(snippet, (), "negative", "negative/code"))
    return samples


def _with_family(sample: Sample, family: str) -> Sample:
    return Sample(sample.text, sample.spans, sample.kind, family)


if __name__ == "__main__":  # python -m bench.dlp_corpus: a glance at the corpus
    corpus = build_corpus()
    positives = sum(s.kind == "positive" for s in corpus)
    print(f"{len(corpus)} samples: {positives} positive, {len(corpus) - positives} hard negatives")
    for sample in corpus[:: max(1, len(corpus) // 25)]:
        print(f"{sample.family:<24} {sample.text!r}")
