"""A real IMAP server for tests: Debian's Dovecot, started with its own configuration, users
(passwd-file), mail directory and runtime folders under a temporary folder, on a free port.

The system's dovecot service is never used. As root (CI), Dovecot's login and internal
processes run as its package's unprivileged users (dovenull, dovecot) and the mail belongs to
the dovecot user; as anyone else, everything runs as that user.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)


class DovecotMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class ImapAccount:
    user: str
    password: str


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _system_user(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


class DovecotServer:
    """``start()`` then ``stop()``; ``account`` logs in, ``append`` delivers a message."""

    def __init__(self, user: str = "secretariat", password: str = "Imap-pass-for-tests-1") -> None:
        if DOVECOT is None:
            raise DovecotMissing("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
        self.account = ImapAccount(user, password)
        self.port = 0
        self._root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        assert self._root is not None
        return self._root

    def _config(self, root: Path, port: int) -> str:
        me = pwd.getpwuid(os.getuid())
        if os.getuid() == 0:
            # Dovecot refuses to run its login process as root; the package's users exist
            # wherever dovecot-imapd is installed.
            login = _system_user("dovenull") or _system_user("nobody")
            internal = _system_user("dovecot") or login
            assert login is not None and internal is not None
            mail_owner = internal
        else:
            login = internal = mail_owner = me
        (root / "mail").mkdir()
        os.chown(root / "mail", mail_owner.pw_uid, mail_owner.pw_gid)
        return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal.pw_name}
default_internal_group = {_group(internal)}
default_login_user = {login.pw_name}
first_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={mail_owner.pw_uid} gid={mail_owner.pw_gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
"""

    def start(self, timeout: float = 15.0) -> None:
        # Under /tmp with 0755, not pytest's 0700 tmp_path: dovenull must reach its folders.
        self._root = Path(tempfile.mkdtemp(prefix="mou-dovecot-"))
        self._root.chmod(0o755)
        for folder in ("run", "state"):
            (self.root / folder).mkdir()
        (self.root / "users").write_text(
            f"{self.account.user}:{{PLAIN}}{self.account.password}\n", encoding="utf-8"
        )
        for attempt in range(5):
            self.port = _free_port()
            (self.root / "dovecot.conf").write_text(self._config_once(), encoding="utf-8")
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready(timeout):
                return
            self._kill()
            if attempt == 4:
                break
        log = (
            (self.root / "dovecot.log").read_text(errors="replace")[-2000:]
            if (self.root / "dovecot.log").exists()
            else ""
        )
        raise RuntimeError(f"dovecot did not start: {log}")

    def _config_once(self) -> str:
        mail = self.root / "mail"
        if mail.exists():
            shutil.rmtree(mail)
        return self._config(self.root, self.port)

    def _wait_ready(self, timeout: float) -> bool:
        """True once the server greets on its port (a login succeeds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.settimeout(2)
                    if conn.recv(100).startswith(b"* OK"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)  # polling for a port to open, with a deadline
        return False

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stderr is not None:
            process.stderr.close()

    def stop(self) -> None:
        self._kill()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        client.login(self.account.user, self.account.password)
        return client

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver a message into a folder with IMAP APPEND."""
        client = self.client()
        try:
            client.append(folder, raw)
        finally:
            client.logout()

    def messages(self, folder: str) -> list[bytes]:
        """The messages in a folder (none if it does not exist)."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search()
            if not uids:
                return []
            found = client.fetch(uids, ["BODY.PEEK[]"])
            return [bytes(found[uid][b"BODY[]"]) for uid in sorted(found)]
        finally:
            client.logout()


def _group(user: pwd.struct_passwd) -> str:
    return grp.getgrgid(user.pw_gid).gr_name
