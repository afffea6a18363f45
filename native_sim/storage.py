"""Where the native app keeps its tokens between runs.

A native app is a public client: anybody who can read its stored refresh
token can act as the user until that token expires or is revoked.  So the
tokens go where the operating system protects them best:

1. the OS keyring (macOS Keychain, Windows Credential Locker, the Secret
   Service on Linux desktops), when the optional ``keyring`` package is
   installed *and* it finds a real backend;
2. otherwise a JSON file only the user can read (mode ``0600``, in a
   directory of mode ``0700``) under the user's configuration directory:
   ``$XDG_CONFIG_HOME/oauth-samples/`` (``~/.config/oauth-samples/``), or
   ``NATIVE_TOKEN_DIR`` when that is set (which also forces the file store).

What is stored is one *record*: which issuer and which client the tokens
belong to, and :meth:`common.tokens.TokenSet.to_dict` — nothing else (no
password, no PKCE verifier, no authorization code).  With DPoP (RFC 9449)
that includes the private key the tokens are bound to (``dpop_jwk``): it
lives beside them, in the same ``0600`` file (or keyring entry), written
and replaced together under the same lock, so a refresh never pairs new
tokens with another key.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process at a time is the user's job there
    fcntl = None

from common.config import Settings

#: The file name inside the token directory.
TOKEN_FILE_NAME = "native_sim-tokens.json"

#: The lock file next to the tokens: held while a refresh spends the refresh token.
LOCK_FILE_NAME = "native_sim-tokens.lock"

#: The keyring "service" under which the record is stored.
KEYRING_SERVICE = "oauth-samples.native_sim"


class TokenStore:
    """The interface both stores share: one JSON-able record per issuer."""

    #: Where the tokens live, for messages ("/home/me/.config/...", "the OS keyring").
    description = ""

    #: The lock file of :meth:`locked` (the token directory's, or the default one for the keyring).
    lock_path: Path

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the store's lock file (``fcntl.flock``, exclusive) for the duration of the block.

        A rotating issuer accepts each refresh token once and treats a second
        use as theft, revoking the whole grant (RFC 9700 §4.14.2). Two
        processes that refresh at once must therefore take turns, and the
        second must re-read the store after the lock is granted: the first
        may already have stored new tokens.
        """
        directory = self.lock_path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            # Closing the descriptor releases the lock, also when the block raised.
            os.close(fd)

    def load(self) -> dict[str, Any] | None:
        """The stored record, or ``None`` when there is none."""
        raise NotImplementedError

    def save(self, record: dict[str, Any]) -> None:
        """Replace the stored record."""
        raise NotImplementedError

    def delete(self) -> bool:
        """Remove the record; ``True`` when there was one."""
        raise NotImplementedError


def default_token_dir() -> Path:
    """The per-user configuration directory for this suite.

    ``$XDG_CONFIG_HOME`` (XDG Base Directory spec; only an absolute value
    counts), else ``~/.config``; on Windows ``%APPDATA%``.
    """
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        xdg = os.environ.get("XDG_CONFIG_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "oauth-samples"


class FileTokenStore(TokenStore):
    """A JSON file readable by its owner only.

    :param directory: where the file lives; created with mode ``0700``.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / TOKEN_FILE_NAME
        self.lock_path = self.directory / LOCK_FILE_NAME
        self.description = str(self.path)

    def _ensure_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkdir's mode is filtered by the umask and ignored for an existing
        # directory; this directory is ours alone, so set it explicitly.
        os.chmod(self.directory, 0o700)

    def load(self) -> dict[str, Any] | None:
        """Read the record; an unreadable or malformed file counts as none."""
        try:
            # O_NOFOLLOW: never read tokens through a symlink someone planted.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            _warn(f"could not open the token file {self.path} ({exc.strerror}); treating it as empty")
            return None
        with os.fdopen(fd, "r", encoding="utf-8") as handle:
            if os.name != "nt" and stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                # Someone loosened the mode: tighten it, and say so, since the
                # tokens may have been readable by others in the meantime.
                os.fchmod(fd, 0o600)
                _warn(
                    f"{self.path} was readable by other users; its mode is now 0600 "
                    "(run `logout` and sign in again if you share this machine)"
                )
            try:
                record = json.load(handle)
            except ValueError:
                _warn(f"ignored the malformed token file {self.path}")
                return None
        return record if isinstance(record, dict) else None

    def save(self, record: dict[str, Any]) -> None:
        """Write the record atomically with mode ``0600``.

        The file is created with ``0600`` from the start (``O_CREAT`` with
        a mode, ``O_EXCL`` on a fresh name) and then renamed over the old
        one, so there is no moment at which the tokens are readable by
        others or half-written.
        """
        self._ensure_directory()
        temporary = self.directory / f".{TOKEN_FILE_NAME}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temporary, flags, 0o600)
        try:
            if os.name != "nt":
                os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def delete(self) -> bool:
        """Remove the token file."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True


class KeyringTokenStore(TokenStore):
    """The OS keyring through the optional ``keyring`` package.

    :param keyring_module: the imported ``keyring`` module.
    :param account: the entry's user name: the issuer, so that tokens of
        different issuers never mix.
    """

    description = "the OS keyring"

    def __init__(self, keyring_module, account: str, lock_directory: Path | None = None):
        self._keyring = keyring_module
        self._account = account
        # The keyring has no locks of its own: the lock file lives in the user's config directory.
        self.lock_path = (lock_directory or default_token_dir()) / LOCK_FILE_NAME

    def load(self) -> dict[str, Any] | None:
        """Read the record from the keyring."""
        secret = self._keyring.get_password(KEYRING_SERVICE, self._account)
        if not secret:
            return None
        try:
            record = json.loads(secret)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def save(self, record: dict[str, Any]) -> None:
        """Store the record in the keyring."""
        self._keyring.set_password(KEYRING_SERVICE, self._account, json.dumps(record, sort_keys=True))

    def delete(self) -> bool:
        """Remove the record from the keyring."""
        try:
            self._keyring.delete_password(KEYRING_SERVICE, self._account)
        except Exception:  # keyring.errors.PasswordDeleteError: nothing stored
            return False
        return True


def _usable_keyring():
    """The ``keyring`` module when it is installed and has a real backend, else ``None``.

    ``keyring`` is optional (not in requirements.txt): on a server or in CI
    there is no keyring daemon, and its fallback backends either fail or
    store secrets in plain text, which is worse than our ``0600`` file.
    """
    try:
        import keyring  # noqa: PLC0415 - optional dependency
        from keyring.backends import fail  # noqa: PLC0415
    except Exception:
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    if "null" in type(backend).__module__ or "plaintext" in type(backend).__name__.lower():
        return None
    return keyring


def open_token_store(settings: Settings) -> TokenStore:
    """The store to use: ``NATIVE_TOKEN_DIR`` if set, else the keyring, else the file.

    :param settings: the validated settings.
    """
    if settings.native_token_dir:
        return FileTokenStore(Path(settings.native_token_dir))
    keyring = _usable_keyring()
    if keyring is not None:
        return KeyringTokenStore(keyring, settings.issuer)
    return FileTokenStore(default_token_dir())


def _warn(message: str) -> None:
    print(f"native_sim: warning: {message}", file=sys.stderr)
