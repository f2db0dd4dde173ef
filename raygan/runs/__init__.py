"""The run folder: paths and the resume check (``folder``), the manifest and its checksums (``manifest``),
the lock one job holds (``lock``) and the storage under it, a local path or the local mirror of a pyarrow
filesystem URI, with atomic writes and checksums (``storage``)."""
from raygan.runs.folder import RunFolder, check_remote_output
from raygan.runs.storage import (
    MIRROR_ENV,
    atomic_write_bytes,
    atomic_write_text,
    is_uri,
    join_uri,
    mirror_path,
    mirror_root,
    remote_of,
    sha256_file,
    sha256_remote,
    uri_of,
)

__all__ = ["MIRROR_ENV", "RunFolder", "atomic_write_bytes", "atomic_write_text", "check_remote_output",
           "is_uri", "join_uri", "mirror_path", "mirror_root", "remote_of", "sha256_file", "sha256_remote",
           "uri_of"]
