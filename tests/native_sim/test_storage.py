"""The token store: a 0600 file in a 0700 directory (no OS keyring here)."""

from __future__ import annotations

import os
import stat

import pytest

from common.config import load_settings
from native_sim import storage
from native_sim.storage import FileTokenStore, default_token_dir, open_token_store

RECORD = {"issuer": "http://127.0.0.1:1/oauth2/default", "client": "native", "tokens": {"access_token": "a"}}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_creates_private_directory_and_file(tmp_path):
    store = FileTokenStore(tmp_path / "deep" / "oauth-samples")
    old_umask = os.umask(0o000)  # the most permissive umask must not matter
    try:
        store.save(RECORD)
    finally:
        os.umask(old_umask)
    assert mode(store.directory) == 0o700
    assert mode(store.path) == 0o600
    assert store.load() == RECORD
    assert [p.name for p in store.directory.iterdir()] == [storage.TOKEN_FILE_NAME]  # no temporary left


def test_save_replaces_and_delete_removes(tmp_path):
    store = FileTokenStore(tmp_path)
    assert store.load() is None
    store.save(RECORD)
    store.save({**RECORD, "client": "trusted"})
    assert store.load()["client"] == "trusted"
    assert mode(store.path) == 0o600
    assert store.delete() is True
    assert store.delete() is False
    assert store.load() is None


def test_loose_permissions_are_tightened_with_a_warning(tmp_path, capsys):
    store = FileTokenStore(tmp_path)
    store.save(RECORD)
    os.chmod(store.path, 0o644)
    assert store.load() == RECORD
    assert mode(store.path) == 0o600
    assert "readable by other users" in capsys.readouterr().err


def test_a_malformed_file_counts_as_no_tokens(tmp_path, capsys):
    store = FileTokenStore(tmp_path)
    store.save(RECORD)
    store.path.write_text("{not json")
    assert store.load() is None
    assert "malformed" in capsys.readouterr().err


def test_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text('{"planted": true}')
    store = FileTokenStore(tmp_path / "store")
    store.directory.mkdir()
    store.path.symlink_to(target)
    assert store.load() is None


def test_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_token_dir() == tmp_path / "oauth-samples"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_token_dir() == tmp_path / "home" / ".config" / "oauth-samples"


def test_native_token_dir_forces_the_file_store(tmp_path):
    settings = load_settings({"NATIVE_TOKEN_DIR": str(tmp_path / "tokens")})
    store = open_token_store(settings)
    assert isinstance(store, FileTokenStore)
    assert store.path == tmp_path / "tokens" / storage.TOKEN_FILE_NAME


def test_without_a_keyring_the_default_is_the_config_file(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setattr(storage, "_usable_keyring", lambda: None)
    store = open_token_store(load_settings({"NATIVE_TOKEN_DIR": ""}))
    assert isinstance(store, FileTokenStore)
    assert store.directory == tmp_path / "oauth-samples"


def test_a_keyring_is_used_when_one_exists(monkeypatch):
    class FakeKeyring:  # stands in for the optional `keyring` package's API
        def __init__(self):
            self.items = {}

        def get_password(self, service, account):
            return self.items.get((service, account))

        def set_password(self, service, account, secret):
            self.items[(service, account)] = secret

        def delete_password(self, service, account):
            del self.items[(service, account)]

    fake = FakeKeyring()
    monkeypatch.setattr(storage, "_usable_keyring", lambda: fake)
    settings = load_settings({"NATIVE_TOKEN_DIR": ""})
    store = open_token_store(settings)
    assert store.description == "the OS keyring"
    store.save(RECORD)
    assert list(fake.items) == [(storage.KEYRING_SERVICE, settings.issuer)]
    assert store.load() == RECORD
    assert store.delete() is True and store.delete() is False


def test_keyring_is_optional_here():
    # keyring is not a dependency; on this machine the file store is the answer.
    assert storage._usable_keyring() is None


def test_bad_native_token_dir_is_a_config_error(tmp_path):
    from common.config import ConfigError

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="NATIVE_TOKEN_DIR"):
        load_settings({"NATIVE_TOKEN_DIR": str(not_a_dir)})
