"""The access log as a recorder: one ``request`` line per settled request, at INFO."""

from __future__ import annotations

import logging

from llm_gateway.records import RequestRecord

log = logging.getLogger("llm_gateway.access")


class AccessLog:
    async def record(self, record: RequestRecord) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "request",
                extra={
                    "request_id": record.request_id,
                    "endpoint": record.endpoint,
                    "status": record.status,
                    "model": record.model,
                    "user": record.user_id,
                    "error_code": record.error_code,
                    "latency_ms": round(record.latency_ms, 2),
                },
            )
