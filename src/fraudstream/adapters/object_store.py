"""S3 adapter: a boto3 client for the configured endpoint, and bucket set-up.

Works with any S3 server (MinIO locally); path-style addressing is a setting.
"""

from __future__ import annotations

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
