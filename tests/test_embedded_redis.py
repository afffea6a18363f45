"""The embedded Redis keeps its files private, even in a folder an older checkout left open."""

from __future__ import annotations

import os
import stat

import redis

from common.embedded_redis import start_embedded_redis
from tests.support import free_port


def test_an_existing_open_data_folder_and_dump_are_made_private(tmp_path):
    folder = tmp_path / "redis"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    dump = folder / "backup.rdb"  # not the dump Redis loads at start (an empty one would stop it)
    dump.write_bytes(b"")
    os.chmod(dump, 0o644)
    proc, url = start_embedded_redis(folder, tmp_path, preferred_port=free_port())
    try:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(dump.stat().st_mode) == 0o600
        assert redis.Redis.from_url(url).ping()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
