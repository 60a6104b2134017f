"""S3 adapter: a boto3 client for the configured endpoint, bucket set-up, and locations
(a local directory or an S3 prefix) that files are read from and written to.

Works with any S3 server (MinIO locally); path-style addressing is a setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from fraudstream.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(settings: S3Settings) -> S3Client:
    """A client with short timeouts and a few retries, for the configured endpoint."""
    assert settings.access_key is not None
    assert settings.secret_key is not None
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint,
        region_name=settings.region,
        aws_access_key_id=settings.access_key.get_secret_value(),
        aws_secret_access_key=settings.secret_key.get_secret_value(),
        config=Config(
            s3={"addressing_style": "path" if settings.path_style else "auto"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


def ensure_buckets(settings: S3Settings) -> list[str]:
    """Create the platform's buckets that are missing; returns the ones created."""
    client = s3_client(settings)
    created = []
    for bucket in settings.buckets:
        try:
            client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            client.create_bucket(Bucket=bucket)
            created.append(bucket)
    return created


class LocationError(ValueError):
    """A dataset location that cannot be read or written as asked."""


class Location:
    """A folder of named objects: a local directory or ``s3://bucket/prefix`` (``s3a://``,
    Hadoop's spelling of the same, is taken too: the scorer's checkpoint is one).

    The training-set files are small enough to move whole, so a location reads and
    writes bytes. Writes replace: writing the same name twice leaves the latest
    bytes (a local write goes through a temporary file and a rename, an S3 put is
    atomic per object), which makes a re-run with the same inputs idempotent.
    """

    def __init__(self, uri: str, settings: S3Settings) -> None:
        self.uri = uri.rstrip("/")
        self._settings = settings
        self._client: S3Client | None = None
        scheme = next((s for s in ("s3://", "s3a://") if self.uri.startswith(s)), None)
        if scheme is not None:
            bucket, _, prefix = self.uri.removeprefix(scheme).partition("/")
            if not bucket:
                raise LocationError(f"{uri}: an S3 location needs a bucket: s3://BUCKET/PREFIX")
            self.bucket: str | None = bucket
            self.prefix = prefix.strip("/")
        elif "://" in self.uri and not self.uri.startswith("file://"):
            raise LocationError(f"{uri}: use a local directory or s3://BUCKET/PREFIX")
        else:
            self.uri = self.uri.removeprefix("file://")
            self.bucket, self.prefix = None, ""

    def __getstate__(self) -> dict[str, object]:
        """Pickled without its client (Spark ships locations to its Python workers)."""
        return {**self.__dict__, "_client": None}

    def _s3(self) -> S3Client:
        """One client per location, made on first use (a client costs milliseconds to make)."""
        if self._client is None:
            self._client = s3_client(self._settings)
        return self._client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def _path(self, name: str) -> Path:
        return Path(self.uri) / name

    def describe(self, name: str) -> str:
        return f"{self.uri}/{name}"

    def write(self, name: str, data: bytes) -> None:
        if self.bucket is None:
            path = self._path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            return
        self._s3().put_object(Bucket=self.bucket, Key=self._key(name), Body=data)

    def read(self, name: str) -> bytes:
        """The object's bytes; a missing object or bucket raises ``LocationError`` naming it."""
        if self.bucket is None:
            path = self._path(name)
            if not path.is_file():
                raise LocationError(f"{path} does not exist")
            return path.read_bytes()
        try:
            body = self._s3().get_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise LocationError(f"{self.describe(name)} does not exist ({code})") from None
            raise
        return body["Body"].read()

    def files(self, folder: str = "") -> list[str]:
        """Names (relative to this location) of the objects under ``folder`` at any depth,
        sorted: a dataset's files (``list`` gives a local folder's entries one level deep)."""
        if self.bucket is None:
            base = self._path(folder) if folder else Path(self.uri)
            root = Path(self.uri)
            found = [str(p.relative_to(root)) for p in base.rglob("*") if p.is_file()]
            return sorted(found)
        if not folder:
            names: list[str] = []
            paginator = self._s3().get_paginator("list_objects_v2")
            prefix = self.prefix + "/" if self.prefix else ""
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                names += [item["Key"][len(prefix) :] for item in page.get("Contents", [])]
            return sorted(names)
        return sorted(self.list(folder))

    def list(self, folder: str) -> list[str]:
        """Names (relative to this location) of the objects under ``folder``."""
        if self.bucket is None:
            base = self._path(folder)
            return [f"{folder}/{p.name}" for p in base.glob("*")] if base.is_dir() else []
        names: list[str] = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(folder) + "/"):
            for item in page.get("Contents", []):
                key = item["Key"]
                names.append(key[len(self.prefix) + 1 :] if self.prefix else key)
        return names

    def delete(self, name: str) -> None:
        """Remove the object (nothing happens when it is absent)."""
        if self.bucket is None:
            self._path(name).unlink(missing_ok=True)
        else:
            self._s3().delete_object(Bucket=self.bucket, Key=self._key(name))


def read_uri(uri: str, settings: S3Settings) -> bytes:
    """The bytes of one file given as a local path or ``s3://bucket/key``."""
    folder, _, name = uri.rstrip("/").rpartition("/")
    if not name:
        raise LocationError(f"{uri}: name a file")
    if not folder:
        return Location(".", settings).read(name)
    return Location(folder, settings).read(name)
