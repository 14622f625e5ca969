"""For each framework, the controls the gateway's audit trail gives evidence for.

A control names the kinds of evidence (:mod:`llm_gateway.reports.evidence`'s
items) that show it at work. The gateway is one component of a system: what it
records is evidence an assessor can use for these controls, not a claim that
the system meets them.

The control identifiers are the frameworks' own: the AICPA's 2017 Trust
Services Criteria (revised points of focus, 2022) for SOC 2, Articles of
Regulation (EU) 2016/679 for the GDPR, and sections of 45 CFR Part 164
(the HIPAA Security Rule) for HIPAA.
"""

from __future__ import annotations

from dataclasses import dataclass

#: What each kind of evidence is, as a report shows it.
ITEM_TITLES = {
    "records": "Requests recorded in the audit trail",
    "authentication": "Requests by authentication method, and failures",
    "access_decisions": "Policy decisions (allow, deny, error)",
    "access_refusals": "Requests refused access (401, 403) by code",
    "dlp_events": "Requests on which DLP acted, by strongest action",
    "pii_redacted": "Personal data found and redacted, by entity type",
    "secrets_blocked": "Credentials found and blocked, by entity type",
    "outbound_screening": "DLP findings by direction (to the provider, from it) and action",
    "confirmations": "Confirmation events of risky actions",
    "management_actions": "Management and administrative actions, by action",
    "policy_revisions": "Decisions by policy revision",
    "providers": "Requests sent to model providers, by provider",
    "errors": "Requests that ended in an error, by code",
    "retention": "Retention cuts of the audit trail (audit prune)",
    "integrity": "Hash chain verification of the period's rows",
}

DISCLAIMER = (
    "This report lists evidence recorded by the LLM gateway for the period: it supports an "
    "assessment of the controls named, and is not a certification or an attestation that "
    "they are met. Prompt and answer text is never stored; counts come from the audit trail."
)


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    evidence: str  # what the gateway provides for it, in a sentence
    items: tuple[str, ...]  # keys of ITEM_TITLES ("integrity": the chain check)


@dataclass(frozen=True)
class Framework:
    key: str
    name: str
    reference: str
    controls: tuple[Control, ...]


SOC2 = Framework(
    "soc2",
    "SOC 2",
    "AICPA Trust Services Criteria (2017, revised points of focus 2022)",
    (
        Control("CC6.1", "Logical access security",
                "Every request is authenticated and decided by the Rego policy before it "
                "reaches a model; allows, denials and refusals are recorded.",
                ("authentication", "access_decisions", "access_refusals")),
        Control("CC6.3", "Role-based access to functions",
                "Management actions (audit and usage reads, approvals, reports) are decided "
                "by the caller's role and recorded, refused ones included.",
                ("management_actions",)),
        Control("CC6.6", "Protection at the system boundary",
                "Credentials and secrets in prompts are stopped at the gateway, before they "
                "leave for an external provider.",
                ("secrets_blocked", "dlp_events")),
        Control("CC6.7", "Restricting transmission of information",
                "Data sent to model providers is screened by DLP on the way out and answers "
                "on the way back; the providers it went to are recorded.",
                ("outbound_screening", "pii_redacted", "providers")),
        Control("CC7.2", "Monitoring for anomalies",
                "Every request, answered, refused or failed, has its audit row; errors are "
                "counted by code and the trail's hash chain is verified.",
                ("records", "errors", "integrity")),
        Control("CC8.1", "Authorised changes",
                "Risky actions (tool calls that change systems) wait for a person's "
                "confirmation; each decision names the policy revision in force.",
                ("confirmations", "policy_revisions")),
        Control("C1.2", "Disposal of confidential information",
                "Audit rows leave the trail only by recorded retention cuts.",
                ("retention",)),
    ),
)  # fmt: skip

GDPR = Framework(
    "gdpr",
    "GDPR",
    "Regulation (EU) 2016/679",
    (
        Control("Art. 5(1)(c)", "Data minimisation",
                "Personal data is redacted before it reaches a model provider; prompts and "
                "answers are never stored, only their digests and lengths.",
                ("pii_redacted", "dlp_events")),
        Control("Art. 5(1)(e)", "Storage limitation",
                "Audit rows older than the retention period are removed by recorded cuts.",
                ("retention",)),
        Control("Art. 25", "Data protection by design and by default",
                "DLP screens every request and answer by default and fails closed; secrets "
                "are blocked whatever the mode.",
                ("outbound_screening", "secrets_blocked", "dlp_events")),
        Control("Art. 30", "Records of processing activities",
                "Each processing of a request is recorded: who, when, which model and "
                "provider, what DLP found (never the values).",
                ("records", "providers", "management_actions")),
        Control("Art. 32", "Security of processing",
                "Access is authenticated and decided by policy; the audit trail's integrity "
                "is verified by its hash chain.",
                ("authentication", "access_decisions", "access_refusals", "integrity")),
    ),
)  # fmt: skip

HIPAA = Framework(
    "hipaa",
    "HIPAA Security Rule",
    "45 CFR Part 164, Subpart C",
    (
        Control("164.308(a)(1)(ii)(D)", "Information system activity review",
                "Reads of the audit trail, usage and these reports are themselves recorded "
                "actions.",
                ("management_actions", "records")),
        Control("164.312(a)(1)", "Access control",
                "Only authenticated callers the policy allows reach a model or an action; "
                "every decision is recorded.",
                ("access_decisions", "access_refusals")),
        Control("164.312(b)", "Audit controls",
                "Every request has its audit row, errors and refusals included.",
                ("records", "errors")),
        Control("164.312(c)(1)", "Integrity",
                "The audit trail is hash-chained; its verification over the period and the "
                "retention cuts are reported.",
                ("integrity", "retention")),
        Control("164.312(d)", "Person or entity authentication",
                "Requests are authenticated by JWT, OIDC, token introspection or API key; "
                "failures are recorded.",
                ("authentication",)),
        Control("164.312(e)(1)", "Transmission security",
                "Data on its way to and from model providers is screened by DLP; personal "
                "data is redacted before it is sent.",
                ("outbound_screening", "pii_redacted", "providers")),
    ),
)  # fmt: skip

FRAMEWORKS = {f.key: f for f in (SOC2, GDPR, HIPAA)}
