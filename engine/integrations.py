"""Application nodes: POST the lead as signed JSON to the node's URL (SPEC 3)."""

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings

from engine.signing import HEADER, sign
from leads.models import LeadExecution
from workflows.models import Node, Workflow


@dataclass(frozen=True)
class Attempt:
    ok: bool
    http_status: int | None = None
    error: str = ""
    # The JSON object the server answered with, if any.
    answer: dict | None = None

    def describe(self) -> str:
        return f"HTTP {self.http_status}" if self.http_status else self.error

    def as_metadata(self) -> dict:
        return {"http_status": self.http_status, "error": self.error or None}


def _json_object(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def post_json(url: str, payload: dict, timeout: float) -> Attempt:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", HEADER: sign(body)},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Attempt(
                ok=200 <= response.status < 300,
                http_status=response.status,
                answer=_json_object(response.read(65536)),
            )
    except urllib.error.HTTPError as exc:
        return Attempt(ok=False, http_status=exc.code)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Attempt(ok=False, error=f"{type(exc).__name__}: {reason}")


def post_lead(workflow: Workflow, node: Node, execution: LeadExecution) -> Attempt:
    lead = execution.lead
    payload = {
        "workflow_id": workflow.pk,
        "node": node.key,
        "attempt": execution.attempts + 1,
        "lead": {"id": lead.pk, "phone": lead.phone, "name": lead.name, "fields": lead.fields},
    }
    timeout = float(node.config.get("timeout_seconds", settings.DIALNEXA_HTTP_TIMEOUT_SECONDS))
    return post_json(node.config["url"], payload, timeout)
