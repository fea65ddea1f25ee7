"""Errors that carry a message meant for the user, never a traceback."""

from __future__ import annotations


class Refused(Exception):
    """The input was refused; the message says what is wrong and what to do (exit status 1)."""
