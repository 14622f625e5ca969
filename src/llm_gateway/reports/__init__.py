"""Compliance reports: the evidence the audit trail holds for each framework's controls.

:mod:`~llm_gateway.reports.evidence` gathers a period's counts in SQL,
:mod:`~llm_gateway.reports.frameworks` maps them to SOC 2, GDPR and HIPAA controls,
:mod:`~llm_gateway.reports.compliance` builds the typed report and
:mod:`~llm_gateway.reports.render` writes it as JSON, HTML or PDF.
"""
