"""coinsite.storage: photos written, synced to disk and readable; the configured default storage is the durable one."""

from __future__ import annotations

import os

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from coinsite.storage import DurableFileSystemStorage


def test_saved_file_is_synced_and_reads_back(tmp_path, monkeypatch):
    synced = []
    real_fdatasync = os.fdatasync

    def recording_fdatasync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
    storage = DurableFileSystemStorage(location=tmp_path)
    data = os.urandom(300_000)

    name = storage.save("coins/7/photo.jpg", ContentFile(data))

    assert synced == [str(tmp_path / name)]
    with storage.open(name) as handle:
        assert handle.read() == data


def test_coin_photos_use_the_durable_storage(settings):
    from predictions.models import Coin

    assert isinstance(default_storage, DurableFileSystemStorage)
    assert isinstance(Coin._meta.get_field("front_image").storage, DurableFileSystemStorage)
