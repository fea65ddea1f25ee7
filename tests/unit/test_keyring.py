"""The service's secret: generated when not configured, the public development value refused,
one key per use, rotation without breaking what was sent."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from mou.cycle.links import InvalidLink, portal_token, verify_portal_token
from mou.intake.rules import identify
from mou.keyring import DEVELOPMENT_SECRET, Keyring, load_or_create_secret
from mou.settings import Settings
from mou.workbook.extract import Extraction
from mou.workbook.identity import IdentityError, TemplateIdentity, sign_identity, verify_identity

IDENTITY = TemplateIdentity("bukhara-deer", 1, 7, "UZ", "ru")
OLD = "the-secret-before-the-rotation"
NEW = "the-secret-after-the-rotation!"
EXPIRES = dt.date(2027, 6, 29)


def test_without_a_configured_secret_each_service_generates_its_own(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path / "a")
    again = Settings(var_dir=tmp_path / "a")
    other = Settings(var_dir=tmp_path / "b")
    assert first.secret == again.secret != other.secret
    assert first.secret != DEVELOPMENT_SECRET and len(first.secret) >= 32
    assert (tmp_path / "a" / "secret").stat().st_mode & 0o777 == 0o600


def test_processes_starting_at_once_agree_on_the_generated_secret(tmp_path: Path) -> None:
    # Real processes, released at the same moment: each would write its own secret if the
    # file were not created exclusively.
    start = tmp_path / "go"
    script = (
        "import pathlib, sys, time\n"
        "from mou.keyring import load_or_create_secret\n"
        f"while not pathlib.Path({str(start)!r}).exists(): time.sleep(0.001)\n"
        f"print(load_or_create_secret(pathlib.Path({str(tmp_path / 'var')!r})))\n"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(12)
    ]
    start.touch()
    found = {run.communicate(timeout=60)[0].strip() for run in runs}
    assert len(found) == 1 and "" not in found
    assert sorted(p.name for p in (tmp_path / "var").iterdir()) == ["secret"]  # no leftovers


def test_a_filesystem_without_hard_links_still_gets_one_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError(1, "Operation not permitted")  # as on SMB shares

    monkeypatch.setattr(os, "link", no_links)
    first = load_or_create_secret(tmp_path)
    assert load_or_create_secret(tmp_path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret"]
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_a_link_minted_with_the_public_development_value_is_refused(tmp_path: Path) -> None:
    # Anyone who reads the source knows this value; it used to be the default secret.
    forged = portal_token(DEVELOPMENT_SECRET, 1, "UZ", EXPIRES)
    with pytest.raises(InvalidLink):
        verify_portal_token(Settings(var_dir=tmp_path).keyring, forged, today=dt.date(2027, 1, 1))


def test_the_public_development_value_is_refused_as_a_configured_secret(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="public development value"):
        Settings(var_dir=tmp_path, secret=DEVELOPMENT_SECRET)
    env = {**os.environ, "MOU_SECRET": DEVELOPMENT_SECRET, "MOU_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "mou", "catalogue"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.startswith("mou: invalid settings: MOU_SECRET: ")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_each_use_has_its_own_key(tmp_path: Path) -> None:
    keys = Keyring(NEW)
    assert keys.signing_key("workbook-identity")[1] != keys.signing_key("portal-link")[1]


def test_what_the_old_secret_signed_still_verifies_after_a_rotation() -> None:
    token = sign_identity(IDENTITY, Keyring(OLD))
    link = portal_token(Keyring(OLD), 7, "UZ", EXPIRES)
    rotated = Keyring(NEW, previous=[OLD])
    assert verify_identity(token, rotated) == IDENTITY
    assert verify_portal_token(rotated, link, today=dt.date(2027, 1, 1)).state == "UZ"
    with pytest.raises(IdentityError):
        verify_identity(token, Keyring(NEW))
    with pytest.raises(InvalidLink):
        verify_portal_token(Keyring(NEW), link, today=dt.date(2027, 1, 1))


def test_templates_and_links_sent_before_key_ids_still_verify() -> None:
    body = json.dumps(IDENTITY.__dict__, sort_keys=True, separators=(",", ":"))
    payload = base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")
    signature = hmac.new(OLD.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert verify_identity(f"mou1.{payload}.{signature}", Keyring(NEW, [OLD])) == IDENTITY
    legacy_key = hmac.new(OLD.encode(), b"mou-portal-link-key", hashlib.sha256).digest()
    message = b"mou-portal-link|v1|7|UZ|2027-06-29"
    digest = hmac.new(legacy_key, message, hashlib.sha256).digest()
    mac = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    link = verify_portal_token(Keyring(NEW, [OLD]), f"7.UZ.20270629.{mac}", dt.date(2027, 1, 1))
    assert (link.cycle_id, link.state) == (7, "UZ")


@pytest.mark.parametrize("damage", ["é", "\u0430", "\x00", " x", "ё" * 64])
def test_a_token_with_an_unexpected_character_is_tampering_not_a_crash(damage: str) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII text: the token never gets that far.
    token = sign_identity(IDENTITY, Keyring(NEW))
    damaged = token[:-3] + damage
    with pytest.raises(IdentityError):
        verify_identity(damaged, Keyring(NEW))
    extraction = Extraction({"sheet": damaged}, {}, {}, {}, set(), [])
    assert identify(extraction, Keyring(NEW)) == "identity_tampered"
