"""What an action did, for the person who asked (CLI line, dashboard notice, --json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ActionResult:
    action: str
    changed: bool  # False: nothing to do, the action had been done already
    message: str  # one line, in English, for the CLI and the log
    cycle_id: int | None = None
    state: str | None = None
    submission_id: int | None = None
    emails: list[str] = field(default_factory=list)  # outbox keys queued by this run
    details: dict[str, Any] = field(default_factory=dict)
    render: bool = False  # the cycle's reports must be rendered again

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "changed": self.changed,
            "message": self.message,
            "cycle": self.cycle_id,
            "state": self.state,
            "submission": self.submission_id,
            "emails": self.emails,
            **({"details": self.details} if self.details else {}),
        }
