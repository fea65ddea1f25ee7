"""The submission portal for ministries and the secretariat's dashboard (FastAPI + Jinja2).

One module per purpose:

- ``server``: ``create_app`` (the routers, error pages and middleware assembled, with the home
  page and /healthz) and ``serve_portal_in_thread`` (uvicorn in a thread, as `mou serve` runs
  it);
- ``ministry``: a ministry's personal link: its pages, the template download, the upload and
  its refusals;
- ``signin``: the Secretariat's sign-in and sign-out (named accounts), and the dependencies
  that give a route the signed-in account and check its role;
- ``dashboard``: the secretariat's dashboard pages; ``accounts``: the admins' accounts page;
- ``cycle_actions``: the cycle actions' forms (confirmation page, post/redirect/get with a
  notice, reports rendered in the background); ``cycle_page``: what the cycle page shows of
  each state (deadline, next reminder, addressees, emails, review comments; no HTTP);
- ``public``: the public page of released PDFs (no sign-in);
- ``api``: the JSON API (/api, described at /openapi.json) and its response models;
- ``shared``: what those share: the ``Portal`` (settings, templates, ingest, throttle), page
  rendering, CSRF forms, link resolution and ``PortalError``;
- ``security``: headers (HSTS over https), error containment, CSRF tokens, the sign-in
  throttle (in the database, by client and by account name) and the client behind trusted
  proxies, the size- and time-limited body and spreadsheet sniffing;
- ``pages``: what the pages show, read from the database (no HTTP).

Public API: ``create_app``, ``serve_portal_in_thread`` (in ``mou.portal.server``), and
``portal_token``, ``verify_portal_token``, ``portal_link``, ``request_email_paragraph`` (in
``mou.cycle.links``). Only ``server``, ``shared``, ``ministry``, ``signin``, ``dashboard``,
``accounts``, ``cycle_actions``, ``public`` and ``api`` import FastAPI, and this package loads
them only when ``create_app`` or ``serve_portal_in_thread`` is asked for.
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
        from mou.portal import server

        return getattr(server, name)
    raise AttributeError(name)
