"""The only files a report may load: the project's own fonts, CSS and images.

WeasyPrint's default fetcher reads any local file and any URL (``<link rel=attachment
href=file:///etc/passwd>`` would embed the file). Narratives are escaped before they reach
HTML, and this fetcher is the second wall: it serves regular files under
``templates/reports/`` with an asset suffix and refuses everything else.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from weasyprint import URLFetcher
from weasyprint.urls import URLFetcherResponse

ASSET_TYPES = {
    ".css": "text/css",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}


class AssetRefused(ValueError):
    """A report asked for something that is not one of the project's assets."""


class AssetFetcher(URLFetcher):
    """Serves ``file:`` URLs of assets under ``root``; records every URL it refused."""

    def __init__(self, root: Path) -> None:
        super().__init__(allowed_protocols=("file",), allow_redirects=False)
        self.root = root.resolve()
        self.served: list[str] = []
        self.refused: list[str] = []

    def resolve(self, url: str) -> Path:
        """The asset file behind ``url``, or AssetRefused."""
        parts = urlsplit(url)
        if parts.scheme.lower() != "file" or parts.netloc not in ("", "localhost"):
            raise AssetRefused(f"only the report's own files may be loaded, not {url!r}")
        path = Path(url2pathname(unquote(parts.path)))
        # resolve() follows symlinks and "..", so a link or a traversal out of root is caught.
        resolved = path.resolve()
        if not resolved.is_relative_to(self.root):
            raise AssetRefused(f"{url!r} is outside the report assets")
        if resolved.suffix.lower() not in ASSET_TYPES or not resolved.is_file():
            raise AssetRefused(f"{url!r} is not a report asset")
        return resolved

    def fetch(self, url: str, headers: dict[str, str] | None = None) -> URLFetcherResponse:
        try:
            path = self.resolve(url)
        except AssetRefused:
            self.refused.append(url)
            raise
        self.served.append(url)
        content_type = ASSET_TYPES.get(path.suffix.lower()) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        return URLFetcherResponse(
            path.as_uri(), body=path.read_bytes(), headers={"Content-Type": content_type}
        )
