"""The one settings object: read once from ``MOU_*`` environment variables, passed down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from mou.resources import data_root


class Settings(BaseSettings):
    """Service configuration. Every field can be set as ``MOU_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="MOU_", extra="ignore")

    # forms/, templates/, db/ and flows/: the checkout's, or the installed package's copies.
    data_root: Path = Field(default_factory=data_root)
    # The service's own files (database, stored returns, outbox): var/ where it is started.
    var_dir: Path = Field(default_factory=lambda: Path.cwd() / "var")
    database_url: str = ""
    # Signs workbook identities and portal links. The embedded default is for local use only.
    secret: str = Field(default="embedded-development-secret-change-me", min_length=16)
    languages: tuple[str, ...] = ("en", "ru", "fr")

    # Embedded Prefect server started by `mou serve` unless PREFECT_API_URL is set.
    prefect_host: str = "127.0.0.1"
    prefect_port: int = 4200
    portal_host: str = "127.0.0.1"
    portal_port: int = 8000
    portal_base_url: str = ""  # public URL for links in emails, e.g. https://reports.example.org
    portal_link_grace_days: int = 90  # a link works until deadline + this, while the cycle is open
    secretariat_token: str = ""  # empty: the secretariat dashboard is off (404)

    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    mail_from: str = "cms.secretariat@example.org"

    # Limits for untrusted workbooks.
    max_upload_bytes: int = 10 * 1024 * 1024
    max_inflated_bytes: int = 64 * 1024 * 1024
    max_sheet_cells: int = 2_000_000
    parse_timeout_seconds: float = 20.0
    parse_memory_bytes: int = 1024 * 1024 * 1024

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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
