"""Embedded S3 server: MinIO built from source at a pinned version.

Clients never depend on MinIO itself: they use the generic S3 settings
(endpoint, keys, path-style), so any S3 server can replace it.
"""

from __future__ import annotations

from fraudstream.adapters.object_store import ensure_buckets
from fraudstream.platform import toolchain
from fraudstream.platform.process import Launch
from fraudstream.platform.service import Health, Service, http_check


class MinioServer(Service):
    name = "minio"

    @property
    def ports(self) -> list[int]:
        return [self.settings.s3.port, self.settings.s3.console_port]

    @property
    def url(self) -> str:
        return self.settings.s3.endpoint

    @property
    def console_url(self) -> str:
        s3 = self.settings.s3
        return f"http://{s3.host}:{s3.console_port}"

    def prepare(self) -> None:
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        toolchain.minio_binary(self.settings.platform.cache_dir)

    def launch(self) -> Launch:
        s3 = self.settings.s3
        assert s3.access_key is not None
        assert s3.secret_key is not None
        return Launch(
            argv=[
                str(toolchain.minio_binary(self.settings.platform.cache_dir)),
                "server",
                str(self.data_dir / "data"),
                "--address",
                f"{s3.host}:{s3.port}",
                "--console-address",
                f"{s3.host}:{s3.console_port}",
                "--quiet",
            ],
            env={
                "MINIO_ROOT_USER": s3.access_key.get_secret_value(),
                "MINIO_ROOT_PASSWORD": s3.secret_key.get_secret_value(),
                "MINIO_UPDATE": "off",
                "MINIO_CALLHOME_ENABLE": "off",
                "MINIO_REGION": s3.region,
            },
            cwd=self.data_dir,
        )

    def check(self) -> Health:
        return http_check(f"{self.url}/minio/health/live")

    def configure(self) -> None:
        ensure_buckets(self.settings.s3)
