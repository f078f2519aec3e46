"""Image data as the rest of the node sees it, and its OCI JSON forms.

:class:`ImageConfig` is the runtime-relevant part of an OCI image config
(``config`` object); :class:`Image` is one stored image. Media types and the
JSON builders live here so the store only sequences steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_MEDIA_TYPES_UNCOMPRESSED = ("application/vnd.oci.image.layer.v1.tar",)
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
# Uncompressed tar size of a layer, so Image.unpacked_size needs no unpacking.
UNCOMPRESSED_SIZE_ANNOTATION = "io.orch.image.layer.uncompressed-size"
# The most bytes one layer may unpack to.
DEFAULT_MAX_BYTES = 8 << 30


@dataclass
class ImageConfig:
    cmd: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    stop_signal: str = ""
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"
    labels: dict[str, str] = field(default_factory=dict)
    # Docker's HEALTHCHECK as the config holds it (``Test``, durations in ns);
    # model.health.from_image_config reads it.
    healthcheck: dict[str, Any] | None = None

    def to_oci(self) -> dict[str, Any]:
        """The OCI ``config`` object; empty fields are omitted (all are optional)."""
        out: dict[str, Any] = {
            "Cmd": list(self.cmd),
            "Entrypoint": list(self.entrypoint),
            "Env": list(self.env),
            "WorkingDir": self.working_dir,
            "User": self.user,
            "StopSignal": self.stop_signal,
            "ExposedPorts": {_port_key(p): {} for p in self.exposed_ports},
            "Labels": dict(self.labels),
            "Healthcheck": self.healthcheck,
        }
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_oci(cls, data: dict[str, Any] | None) -> ImageConfig:
        data = data or {}
        return cls(
            cmd=list(data.get("Cmd") or []),
            entrypoint=list(data.get("Entrypoint") or []),
            env=list(data.get("Env") or []),
            working_dir=str(data.get("WorkingDir") or ""),
            user=str(data.get("User") or ""),
            stop_signal=str(data.get("StopSignal") or ""),
            exposed_ports=sorted((data.get("ExposedPorts") or {}).keys()),
            labels=dict(data.get("Labels") or {}),
            healthcheck=dict(data.get("Healthcheck") or {}) or None,
        )


@dataclass
class Image:
    id: str  # "sha256:<config digest hex>"
    repo_tags: list[str]
    manifest_digest: str
    created: str
    size: int  # sum of compressed layer sizes
    config: ImageConfig
    diff_ids: list[str]
    layer_digests: list[str] = field(default_factory=list)  # compressed, bottom first
    unpacked_size: int = 0  # sum of uncompressed layer tar sizes (0 if unknown)
    # "NAME@DIGEST" for each name the image is known by (Docker's RepoDigests):
    # its manifest digest under each tagged name, and the digests it was pulled by.
    repo_digests: list[str] = field(default_factory=list)


def _port_key(port: str) -> str:
    return port if "/" in port else f"{port}/tcp"


def build_config(
    config: ImageConfig, diff_ids: list[str], created: str, created_by: str
) -> dict[str, Any]:
    return {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created, "created_by": created_by}],
    }


def descriptor(media_type: str, digest: str, size: int, **annotations: str) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def build_manifest(config_desc: dict[str, Any], layers: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc,
        "layers": layers,
    }
