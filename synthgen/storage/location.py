"""Where a run directory lives: a local path, or an object store (`s3://bucket/prefix`,
`gs://bucket/prefix`) reached through pyarrow.fs with the standard credential and endpoint
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL,
AWS_REGION; GOOGLE_APPLICATION_CREDENTIALS, STORAGE_EMULATOR_HOST).

Object stores have no rename: a whole-object write is the only atomic step. So every file
written here is written whole (`write_bytes`), and the commit protocol (storage.layout) names
data parts uniquely and writes a commit marker last. A Location is a URI string underneath:
it pickles to Ray workers, each opening the filesystem once."""

from __future__ import annotations

import functools
import os
import posixpath
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from synthgen.config.base import STORAGE_SCHEMES as SCHEMES
from synthgen.config.base import storage_problem
from synthgen.config.errors import UserError


# The standard variables object-store clients read; a run hands them to its Ray workers.
STORAGE_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                     "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST")


def storage_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in STORAGE_VARIABLES if os.environ.get(name)}


@dataclass(frozen=True)
class Location:
    uri: str

    @classmethod
    def of(cls, where: str | Path | Location) -> Location:
        if isinstance(where, Location):
            return where
        text = str(where)
        if problem := storage_problem(text):
            raise UserError(problem)
        scheme = urlparse(text).scheme
        if scheme in SCHEMES:
            parsed = urlparse(text)
            if not parsed.netloc:
                raise UserError(f"{text}: no bucket named; write {scheme}://BUCKET/PREFIX")
            return cls(f"{scheme}://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/"))
        return cls(str(Path(text)))

    @property
    def is_local(self) -> bool:
        return urlparse(self.uri).scheme not in SCHEMES

    @property
    def local(self) -> Path:
        assert self.is_local, self.uri
        return Path(self.uri)

    def __truediv__(self, relative: str) -> Location:
        if self.is_local:
            return Location(str(Path(self.uri) / relative))
        return Location(posixpath.join(self.uri, relative))

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return posixpath.basename(self.uri.rstrip("/"))

    # -- the filesystem ---------------------------------------------------------------------
    @property
    def fs(self):
        return _filesystem(urlparse(self.uri).scheme if not self.is_local else "")

    @property
    def path(self) -> str:
        """The path inside `fs` (a bucket-relative `bucket/key` for object stores)."""
        if self.is_local:
            return str(Path(self.uri).resolve())
        parsed = urlparse(self.uri)
        return f"{parsed.netloc}/{parsed.path.lstrip('/')}".rstrip("/")

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        if self.is_local:
            return self.local.is_dir()
        # An object store has no folders: a prefix with objects under it is one.
        return any(True for _ in self._info(pafs.FileSelector(self.path, allow_not_found=True)))

    def _info(self, what):
        """File info, with a store that does not answer (endpoint, credentials) a user error."""
        try:
            return self.fs.get_file_info(what)
        except OSError as exc:
            if self.is_local:
                raise
            raise UserError(f"{self.uri}: the object store did not answer ({str(exc).splitlines()[0][:300]}); "
                            "check AWS_ENDPOINT_URL / AWS_REGION and the credentials variables") from None

    def make_dirs(self) -> None:
        if self.is_local:
            self.local.mkdir(parents=True, exist_ok=True)

    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as handle:
                return handle.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            if "not found" in str(exc).lower() or "NoSuchKey" in str(exc):
                raise FileNotFoundError(self.uri) from None
            raise

    def open_input_file(self):
        """A seekable reader (what Parquet's footer-first reading needs)."""
        return self.fs.open_input_file(self.path)

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        """Write the file whole or not at all: a local file through a temporary file and a
        rename (fsynced), an object by one upload."""
        if self.is_local:
            target = self.local
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
            return
        with self.fs.open_output_stream(self.path) as handle:
            handle.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def delete(self) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if "not found" not in str(exc).lower():
                raise

    def files(self, suffix: str = "") -> Iterator[Location]:
        """The files directly under this folder, by name."""
        import pyarrow.fs as pafs

        infos = self._info(pafs.FileSelector(self.path, allow_not_found=True))
        names = sorted(posixpath.basename(i.path) for i in infos if i.type == pafs.FileType.File)
        for name in names:
            if name.endswith(suffix):
                yield self / name


@functools.cache
def _filesystem(scheme: str):
    import pyarrow.fs as pafs

    if scheme == "":
        return pafs.LocalFileSystem()
    if scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        # Delayed open: an object smaller than a part goes up in one PUT, not a multipart upload.
        options = {"region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                   "allow_delayed_open": True}
        if endpoint:
            parsed = urlparse(endpoint)
            options |= {"endpoint_override": parsed.netloc or parsed.path, "scheme": parsed.scheme or "https"}
        return pafs.S3FileSystem(**options)
    return pafs.GcsFileSystem()
