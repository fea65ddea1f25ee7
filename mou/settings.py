"""The one settings object: read once from ``MOU_*`` environment variables, passed down."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mou.i18n.languages import LANGUAGES
from mou.keyring import Keyring, check_secret, load_or_create_secret
from mou.resources import data_root, default_var_dir


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``MOU_<NAME>``."""

    # Errors never repeat what was given: it may be a secret.
    model_config = SettingsConfigDict(env_prefix="MOU_", extra="ignore", hide_input_in_errors=True)

    # forms/, templates/, db/ and flows/: the checkout's, or the installed package's copies.
    data_root: Path = Field(default_factory=data_root)
    # The service's own files (database, stored returns, outbox, secret): the checkout's var/,
    # or a per-user folder for an installed service (mou.resources.default_var_dir).
    var_dir: Path = Field(default_factory=default_var_dir)
    # May hold a password: shown only through mou.store.database.display_url.
    database_url: str = Field(default="", repr=False)
    # Signs workbook identities, portal links and CSRF tokens (mou.keyring). Unset:
    # a random secret generated on first start and kept in var/secret (owner-only).
    secret: str = Field(default="", repr=False)
    # Secrets used before a rotation: what they signed (workbooks, links) still verifies.
    previous_secrets: tuple[str, ...] = Field(default=(), repr=False)
    languages: tuple[str, ...] = LANGUAGES
    # The CAMI summary's annex names each focal point's state and function only; true, it
    # also prints their names and email addresses (personal data: only once the Secretariat
    # publishes them, as CAMI programme of work 4.1.2 and 4.1.3 foresee).
    publish_focal_points: bool = False

    # Embedded Prefect server started by `mou serve` unless PREFECT_API_URL is set.
    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    portal_host: str = "127.0.0.1"
    portal_port: int = 8000
    portal_base_url: str = ""  # public URL for links in emails, e.g. https://reports.example.org
    portal_link_grace_days: int = 90  # a link works until deadline + this, while the cycle is open
    # Reverse proxies (addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto are
    # believed; anyone else could write those headers to pass for another client.
    portal_trusted_proxies: tuple[str, ...] = ()
    # A request body must keep arriving (no pause longer than the first) and be complete
    # within the second, so a slow or stalled upload cannot hold the portal up.
    portal_body_timeout_seconds: float = Field(default=30.0, gt=0)
    portal_body_total_seconds: float = Field(default=300.0, gt=0)

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = Field(default="", repr=False)
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "cms.secretariat@example.org"

    # The Secretariat's mailbox, read as an intake channel (mou.mailbox). Unset host: off.
    imap_host: str = ""
    imap_port: int = 0  # 0: 993 with ssl, else 143
    imap_user: str = ""
    imap_password: str = Field(default="", repr=False)
    imap_security: Literal["ssl", "starttls", "none"] = "ssl"
    imap_folder: str = "INBOX"
    # Where read messages are moved once what they brought is committed.
    imap_processed_folder: str = "Processed"
    # Seconds between looks when the server offers no IDLE (and the longest IDLE wait).
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    imap_timeout: float = Field(default=30.0, gt=0)
    # Supporting documents (plans, maps, legal texts) kept beside a return: each at most this.
    max_document_bytes: int = 20 * 1024 * 1024

    # Limits for untrusted workbooks.
    max_upload_bytes: int = 10 * 1024 * 1024
    # A file over the upload limit is still kept whole (and refused with a receipt) up to
    # this size; a bigger one is refused before anything is stored.
    max_kept_bytes: int = 100 * 1024 * 1024
    max_inflated_bytes: int = 64 * 1024 * 1024
    max_sheet_cells: int = 2_000_000
    parse_timeout_seconds: float = 20.0
    parse_memory_bytes: int = 1024 * 1024 * 1024

    @field_validator("secret")
    @classmethod
    def _configured_secret(cls, value: str) -> str:
        return check_secret(value) if value else value

    @field_validator("portal_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8)"
                ) from None
        return tuple(entry.strip() for entry in value)

    @field_validator("previous_secrets")
    @classmethod
    def _previous_secrets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_secret(s, "MOU_PREVIOUS_SECRETS") for s in value)

    def model_post_init(self, context: object) -> None:
        if not self.secret:
            self.secret = load_or_create_secret(self.var_dir)

    @property
    def effective_imap_port(self) -> int:
        return self.imap_port or (993 if self.imap_security == "ssl" else 143)

    @property
    def keyring(self) -> Keyring:
        return Keyring(self.secret, self.previous_secrets)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'mou.sqlite3'}"

    @property
    def catalogue_dir(self) -> Path:
        return self.data_root / "db" / "catalogue"

    @property
    def forms_dir(self) -> Path:
        return self.data_root / "forms"

    @property
    def templates_dir(self) -> Path:
        return self.data_root / "templates"

    @property
    def migrations_dir(self) -> Path:
        return self.data_root / "db" / "migrations"

    @property
    def flows_parent(self) -> Path:
        """The folder to put on ``sys.path`` so that ``import flows`` finds the flows."""
        return self.data_root

    @property
    def files_dir(self) -> Path:
        return self.var_dir / "files"

    @property
    def prefect_home(self) -> Path:
        return self.var_dir / "prefect"

    @property
    def outbox_dir(self) -> Path:
        return self.var_dir / "outbox"

    @property
    def inbox_dir(self) -> Path:
        return self.var_dir / "inbox"


def settings_problem(error: ValidationError) -> str:
    """One line naming each ``MOU_*`` variable that is wrong and why."""
    parts = []
    for problem in error.errors():
        name = "MOU_" + "_".join(str(part) for part in problem["loc"]).upper()
        parts.append(f"{name}: {problem['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
