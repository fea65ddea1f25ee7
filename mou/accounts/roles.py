"""Who may do what. Every entry point (CLI, dashboard, API) passes an ``Actor`` to the
Secretariat's actions, which check it themselves, so no entry point can forget to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mou.errors import Refused

Role = Literal["admin", "officer", "reader"]
ROLES: tuple[Role, ...] = ("admin", "officer", "reader")

# What each role may do beyond viewing.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "view": frozenset(ROLES),
    "act": frozenset({"admin", "officer"}),  # every cycle action
    "waive_errors": frozenset({"admin"}),  # accept a return despite a named error
    "manage_users": frozenset({"admin"}),
    "edit_contacts": frozenset({"admin", "officer"}),
}


class NotAllowed(Refused):
    """The actor's role does not allow the action (the dashboard answers 403)."""


@dataclass(frozen=True)
class Actor:
    name: str  # a user's name, or "cli:<os user>" for the command line
    role: Role

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise NotAllowed(f"{self.name} ({self.role}) may not {permission.replace('_', ' ')}")
