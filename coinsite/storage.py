"""Media storage: coin photos are on disk before the row that points at them is committed.

`DurableFileSystemStorage` is Django's FileSystemStorage plus, for every file it writes:

* fdatasync of the file and fsync of its directory, so an accepted photo survives a power cut, not only the death of
  a process (its row is committed after the write returns);
* POSIX_FADV_DONTNEED once the bytes are on disk: the photo is read again rarely (a curator's view, a training
  run), and dropping its clean pages keeps the page cache from growing by 10 MB per API request. Measured here:
  a buffered 4.8 MB write cost 0.8 ms of CPU until about 1.2 GB of the cache was dirty, then 10 ms of CPU each
  (fresh memory for the cache); written, synced and dropped it costs 1.3 ms of CPU and 3 ms of wall time,
  steadily.
"""

from __future__ import annotations

import os

from django.core.files.storage import FileSystemStorage


class DurableFileSystemStorage(FileSystemStorage):
    def _save(self, name, content):
        name = super()._save(name, content)
        sync_to_disk(self.path(name))
        return name


def sync_to_disk(path: str) -> None:
    """Flush a written file and its directory entry to disk, then drop the file's pages from the cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
