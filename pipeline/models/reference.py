"""Registry locations and image references: one parser for every stage.

A *registry location* is where Drydock publishes: a host plus an optional namespace
(`127.0.0.1:5000`, `ghcr.io/acme`, `registry.example:5000/team/drydock`). Repositories are
placed under the namespace (`ghcr.io/acme` + `drydock/postgresql` is the repository
`acme/drydock/postgresql` on host `ghcr.io`); API calls go to the host, credentials are
looked up by host (as `docker login` stores them), and names are lower-cased because the
distribution spec allows only lower-case repository names (a GitHub owner `Acme` publishes
to `ghcr.io/acme`).

An *image reference* is what a person types (`myapp`, `myapp:1`, `127.0.0.1:5000/x/y@sha256:..`),
normalised the way the Docker engine does it: no host means `docker.io`, a single-component
Docker Hub name means `library/`, no tag and no digest means `:latest`.

Pure: parsing raises ValueError with the reason; callers add the file or flag it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*"
    r"|\[[0-9a-f:]+\])(?::[0-9]{1,5})?$"
)
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_IMAGE_ID = re.compile(r"^(?:sha256:)?[0-9a-f]{12,64}$")


def is_loopback(host: str) -> bool:
    """True for registries on this machine, which speak plain HTTP (as the engine allows)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in {"localhost", "[::1]"} or name.startswith("127.")


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def _check_path(path: str, what: str) -> None:
    for component in path.split("/"):
        if not _COMPONENT.match(component):
            raise ValueError(
                f"{what} component {component!r} is not a valid repository name "
                "(lower-case letters, digits and single separators . _ __ -)"
            )


@dataclass(frozen=True)
class RegistryLocation:
    """Where images are published: a registry host and an optional namespace under it."""

    host: str
    namespace: str = ""

    @classmethod
    def parse(cls, text: str) -> RegistryLocation:
        """`host[:port][/namespace...]`, case-folded; ValueError says what is wrong."""
        value = text.strip().rstrip("/")
        if not value:
            raise ValueError("is empty (expected host[:port][/namespace], e.g. ghcr.io/acme)")
        if "://" in value:
            raise ValueError("is a URL; give host[:port][/namespace] without a scheme")
        if "@" in value or (value.rsplit("/", 1)[-1].count(":") and "/" in value):
            raise ValueError("names an image (tag or digest); give host[:port][/namespace]")
        host, _, namespace = value.partition("/")
        host, namespace = host.lower(), namespace.lower()
        if not _HOST.match(host) or not _looks_like_host(host):
            raise ValueError(
                f"host {host!r} is not a registry host (it needs a dot, a port or to be "
                "localhost, e.g. ghcr.io or 127.0.0.1:5000)"
            )
        if namespace:
            _check_path(namespace, "namespace")
        return cls(host, namespace)

    def __str__(self) -> str:
        return f"{self.host}/{self.namespace}" if self.namespace else self.host

    @property
    def insecure(self) -> bool:
        """Loopback registries are plain HTTP; everything else HTTPS."""
        return is_loopback(self.host)

    @property
    def api_base(self) -> str:
        """The distribution API root: `http(s)://host/v2`."""
        return f"{'http' if self.insecure else 'https'}://{self.host}/v2"

    def repository(self, name: str) -> str:
        """The repository path on the host for a Drydock repository name."""
        return f"{self.namespace}/{name}" if self.namespace else name

    def image(self, name: str, *, tag: str = "", digest: str = "") -> str:
        """`host/namespace/name[:tag][@digest]`."""
        ref = f"{self}/{name}"
        return ref + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


@dataclass(frozen=True)
class ImageReference:
    """A normalised image reference: host, repository path, tag and/or digest."""

    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse as the Docker engine does (docker.io, library/, :latest when neither)."""
        value = text.strip()
        if not value:
            raise ValueError("is empty")
        rest, _, digest = value.partition("@")
        if digest and not _DIGEST.match(digest):
            raise ValueError(f"digest {digest!r} is not sha256:<64 hex digits>")
        first, slash, remainder = rest.partition("/")
        if slash and _looks_like_host(first):
            host, path = first.lower(), remainder
        else:
            host, path = DOCKER_HUB, rest
        tag = ""
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            path, _, tag = path.rpartition(":")
            if not _TAG.match(tag):
                raise ValueError(f"tag {tag!r} is not a valid tag")
        if not path:
            raise ValueError("has no repository name")
        if path != path.lower():
            raise ValueError(f"repository {path!r} must be lower-case")
        _check_path(path, "repository")
        if host == DOCKER_HUB and "/" not in path:
            path = f"library/{path}"
        if not tag and not digest:
            tag = "latest"
        return cls(host, path, tag, digest)

    @property
    def name(self) -> str:
        """`host/repository` without tag or digest."""
        return f"{self.host}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The short form the engine shows (`myapp:latest`, `127.0.0.1:5000/x/y:1`)."""
        name = self.name
        if self.host == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
        return (
            name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")
        )

    @property
    def insecure(self) -> bool:
        return is_loopback(self.host)

    def __str__(self) -> str:
        ref = self.name + (f":{self.tag}" if self.tag else "")
        return ref + (f"@{self.digest}" if self.digest else "")


def looks_like_image_id(text: str) -> bool:
    """`sha256:<hex>` or a bare hex prefix of at least 12 characters, as `docker images` shows."""
    return bool(_IMAGE_ID.match(text))
