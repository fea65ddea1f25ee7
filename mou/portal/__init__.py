"""The submission portal for ministries and the secretariat's dashboard (FastAPI + Jinja2).

Public API: ``create_app``, ``serve_portal_in_thread`` (in ``mou.portal.app``), and
``portal_token``, ``verify_portal_token``, ``portal_link``, ``request_email_paragraph`` (in
``mou.cycle.links``). FastAPI is imported only by ``mou.portal.app``.
"""

from __future__ import annotations

from mou.cycle.links import (
    ExpiredLink,
    InvalidLink,
    PortalLink,
    link_expiry,
    portal_link,
    portal_token,
    request_email_paragraph,
    verify_portal_token,
)

__all__ = [
    "ExpiredLink",
    "InvalidLink",
    "PortalLink",
    "create_app",
    "link_expiry",
    "portal_link",
    "portal_token",
    "request_email_paragraph",
    "serve_portal_in_thread",
    "verify_portal_token",
]


def __getattr__(name: str):  # lazy: the email and CLI paths need links, not FastAPI
    if name in ("create_app", "serve_portal_in_thread"):
        from mou.portal import app

        return getattr(app, name)
    raise AttributeError(name)
