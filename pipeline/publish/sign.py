"""Sign published images by digest, attach their SBOM, and verify both; sign catalog files.

Keyless (`--keyless`, the nightly workflow): cosign signs with a short-lived certificate for
the CI's OIDC identity, recorded in Rekor; nothing secret is stored anywhere. Key pair
(local runs, air-gapped sites): a user-provided cosign key pair is used as given; otherwise
one is created on first use under `$DRYDOCK_CACHE/keys`. Its password comes from
COSIGN_PASSWORD when set, else a random one is generated and stored beside the key with
mode 0600. The password is never
logged or put on a command line: it reaches cosign only through its environment.

Verification answers one question for a reference: does the digest it names carry a valid
signature and a valid CycloneDX attestation under this public key? A "no" raises
VerificationFailed (exit 1); failing to ask (registry down, cosign missing) raises a
ToolError (exit 3). Either way the image is not trusted.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PublishError, VerificationFailed
from pipeline.models.publish import PublishedImage
from pipeline.models.reference import ImageReference
from pipeline.tools.cosign import Cosign
from pipeline.tools.locate import cache_root
from pipeline.tools.registry import RegistryClient

log = logging.getLogger(__name__)

SBOM_TYPE = "cyclonedx"
PASSWORD_ENV = "COSIGN_PASSWORD"  # noqa: S105 - the variable's name, not a secret


@dataclass(frozen=True)
class SigningKey:
    """A cosign key pair and the password that unlocks the private half."""

    private: Path
    public: Path
    password: str

    def __repr__(self) -> str:  # never show the password, even in a traceback
        return f"SigningKey(private={self.private}, public={self.public})"


@dataclass(frozen=True)
class Keyless:
    """Sign with the CI's OIDC identity (Fulcio certificate, Rekor entry): no key to keep."""

    def __repr__(self) -> str:
        return "Keyless()"


Signer = SigningKey | Keyless


def _key_args(signer: Signer) -> tuple[Path | None, str | None]:
    if isinstance(signer, Keyless):
        return None, None
    return signer.private, signer.password


@dataclass(frozen=True)
class Verified:
    """What verification proved about one reference."""

    reference: str  # repository@digest that was checked
    digest: str
    signature: bool
    attestation: bool


def default_key_dir() -> Path:
    return cache_root() / "keys"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)


def _password(key_dir: Path, create: bool) -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env is not None:
        return from_env
    stored = key_dir / "cosign.password"
    if stored.is_file():
        return stored.read_text(encoding="utf-8").strip()
    if not create:
        raise PublishError(
            f"no {PASSWORD_ENV} in the environment and no password file in {key_dir}"
        )
    password = secrets.token_urlsafe(32)
    _write_private(stored, password)
    log.info("generated a cosign key password, stored with mode 0600 in %s", stored)
    return password


def ensure_key(
    cosign: Cosign, key_dir: Path | None = None, private: Path | None = None
) -> SigningKey:
    """The signing key: `private` (with its `.pub` beside it) if given, else the cached one.

    A missing cached key pair is created (directory mode 0700, key files 0600).
    """
    if private is not None:
        public = private.with_suffix(".pub")
        if not private.is_file() or not public.is_file():
            raise PublishError(f"cosign key pair {private} / {public} not found")
        return SigningKey(private, public, _password(private.parent, create=False))
    directory = key_dir or default_key_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    key, pub = directory / "cosign.key", directory / "cosign.pub"
    if key.is_file() and pub.is_file():
        return SigningKey(key, pub, _password(directory, create=False))
    password = _password(directory, create=True)
    log.info("creating a cosign key pair in %s", directory)
    made_key, made_pub = cosign.generate_key_pair(directory, password)
    made_key.chmod(0o600)
    return SigningKey(made_key, made_pub, password)


def by_digest(image: PublishedImage) -> str:
    """`registry/repository@sha256:...`: what gets signed (a tag can move, a digest cannot)."""
    return f"{image.registry}/{image.repository}@{image.digest}"


def make_signer(cosign: Cosign, *, keyless: bool = False, private: Path | None = None) -> Signer:
    """Keyless when asked (never together with a key), else the key pair of ensure_key."""
    if keyless:
        if private is not None:
            raise PublishError("--keyless and --signing-key exclude each other")
        return Keyless()
    return ensure_key(cosign, private=private)


def sign_image(cosign: Cosign, image: PublishedImage, key: Signer, sbom: Path) -> None:
    """Sign a published image by digest and attach its CycloneDX SBOM as an attestation."""
    if not image.gated:
        raise PublishError(f"{image.reference}: did not pass its gate; not signed")
    if not sbom.is_file():
        raise PublishError(f"{image.target}: SBOM {sbom} not found; not signed")
    ref = by_digest(image)
    private, password = _key_args(key)
    cosign.sign(ref, private, password)
    cosign.attest(ref, private, password, sbom, SBOM_TYPE)
    log.info("signed %s and attached its %s SBOM", ref, SBOM_TYPE)


def sign_files(cosign: Cosign, files: list[Path], key: Signer) -> list[Path]:
    """Sign each file (catalogs) beside itself; returns the signature (and certificate) files."""
    private, password = _key_args(key)
    written: list[Path] = []
    for path in files:
        written.extend(cosign.sign_blob(path, private, password))
        log.info("signed %s", path.name)
    return written


def verify_files(cosign: Cosign, files: list[Path], public_key: Path) -> list[str]:
    """Why each file's signature does not verify under public_key ([] = all verified)."""
    problems: list[str] = []
    for path in files:
        if not path.with_name(path.name + ".sig").is_file():
            problems.append(f"{path}: no signature ({path.name}.sig)")
            continue
        verdict = cosign.verify_blob(path, public_key)
        if not verdict.ok:
            problems.append(f"{path}: signature does not verify: {verdict.detail[-200:]}")
    return problems


def split_reference(image: str) -> tuple[str, str, str]:
    """`host[:port]/repo/name:tag` or `...@sha256:..` -> (host, repository, tag-or-digest).

    The image must name its registry (signatures live beside the image in that registry)."""
    try:
        ref = ImageReference.parse(image)
    except ValueError as err:
        raise PublishError(f"{image!r}: {err}") from err
    if "/" not in image or image.strip().split("/", 1)[0].lower() != ref.host:
        raise PublishError(f"{image!r} must name its registry, e.g. 127.0.0.1:5000/repo:tag")
    return ref.host, ref.repository, ref.digest or ref.tag


def verify_image(
    cosign: Cosign,
    client: RegistryClient,
    image: str,
    public_key: Path,
    *,
    expect_digest: str | None = None,
    attestation: bool = True,
) -> Verified:
    """Resolve `image` to its digest over the registry API and verify what signs that digest.

    Raises VerificationFailed when the digest differs from `expect_digest`, or when the
    signature or the SBOM attestation is missing or does not verify under `public_key`.
    """
    _, repository, reference = split_reference(image)
    digest = client.digest(repository, reference)
    if digest is None:
        raise VerificationFailed(f"{image}: no such manifest in {client.registry}")
    if expect_digest and digest != expect_digest:
        raise VerificationFailed(f"{image} names {digest}, expected {expect_digest}")
    ref = f"{client.registry}/{repository}@{digest}"
    signed = cosign.verify(ref, public_key)
    if not signed.ok:
        raise VerificationFailed(f"{image} ({digest}): signature does not verify:\n{signed.detail}")
    attested = True
    if attestation:
        att = cosign.verify_attestation(ref, public_key, SBOM_TYPE)
        if not att.ok:
            raise VerificationFailed(
                f"{image} ({digest}): {SBOM_TYPE} attestation does not verify:\n{att.detail}"
            )
    log.info("verified %s: signature%s", ref, " and SBOM attestation" if attestation else "")
    return Verified(reference=ref, digest=digest, signature=True, attestation=attested)
