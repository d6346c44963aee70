"""cosign: generate keys, sign and attest images, sign and verify files (catalogs).

Two ways to sign. With a key pair (local runs, air-gapped sites): no Fulcio certificate, no
Rekor transparency log (`--tlog-upload=false` to sign, `--insecure-ignore-tlog` to verify),
plain http allowed for the local registry; the key's password travels only in the
COSIGN_PASSWORD environment variable of the cosign process (the runner logs argv only).
Keyless (`key=None`, the nightly workflow): cosign exchanges the CI's OIDC token (GitHub's
`id-token: write`) for a short-lived Fulcio certificate and records the signature in Rekor;
verification then names the expected identity instead of a public key.

The binary is the pinned build from `scripts/tools.sh cosign`, checked by its reported
version before use (as pipeline.tools.locate does for the scanners).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.tools import provision
from pipeline.tools.locate import bin_dir, cache_root, pinned_version, reports_version
from pipeline.tools.runner import Completed, run

log = logging.getLogger(__name__)

QUICK_TIMEOUT = 60.0
SIGN_TIMEOUT = 300.0

# What cosign prints when the check itself ran and the answer was "no" (as opposed to an
# error reaching the registry or reading a key).
_VERIFICATION_FAILURES = re.compile(
    r"no matching signatures|no matching attestations|no signatures found|"
    r"no attestations found|signature mismatch|invalid signature|failed to verify signature|"
    r"MANIFEST_UNKNOWN|none of the attestations matched",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one `cosign verify*` run that completed."""

    ok: bool
    detail: str  # stdout on success (JSON payloads), the stderr tail on failure


@dataclass(frozen=True)
class Cosign:
    """A located cosign binary and how to reach the registry."""

    path: Path
    version: str
    insecure_registry: bool = True  # plain http / self-signed: the local registry

    def _registry_flags(self) -> list[str]:
        if not self.insecure_registry:
            return []
        return ["--allow-insecure-registry", "--allow-http-registry"]

    def _env(self, password: str | None = None) -> dict[str, str]:
        # Keep cosign's TUF cache inside Drydock's cache; it is never fetched offline.
        env = {"TUF_ROOT": str(cache_root() / "sigstore"), "COSIGN_EXPERIMENTAL": "0"}
        if password is not None:
            env["COSIGN_PASSWORD"] = password
        return env

    def generate_key_pair(self, directory: Path, password: str) -> tuple[Path, Path]:
        """Write `cosign.key` (encrypted with password) and `cosign.pub` into directory."""
        run(
            [str(self.path), "generate-key-pair", "--output-key-prefix", "cosign"],
            timeout=QUICK_TIMEOUT,
            env=self._env(password),
            cwd=directory,
        )
        return directory / "cosign.key", directory / "cosign.pub"

    @staticmethod
    def _key_flags(key: Path | None) -> list[str]:
        """A key pair signs without the transparency log; keyless (None) uses Fulcio+Rekor."""
        return ["--key", str(key), "--tlog-upload=false"] if key is not None else []

    def sign(self, ref: str, key: Path | None, password: str | None) -> None:
        """Sign `ref` (which must be by digest) and push the signature next to it."""
        run(
            [str(self.path), "sign", *self._key_flags(key), "--yes", *self._registry_flags(), ref],
            timeout=SIGN_TIMEOUT,
            env=self._env(password),
        )

    def attest(
        self, ref: str, key: Path | None, password: str | None, predicate: Path, kind: str
    ) -> None:
        """Attach `predicate` (e.g. a CycloneDX SBOM) to `ref` as a signed attestation."""
        run(
            [str(self.path), "attest", *self._key_flags(key), "--type", kind,
             "--predicate", str(predicate), "--yes", *self._registry_flags(), ref],
            timeout=SIGN_TIMEOUT,
            env=self._env(password),
        )  # fmt: skip

    def sign_blob(self, path: Path, key: Path | None, password: str | None) -> tuple[Path, ...]:
        """Sign a file: `<file>.sig` (and `<file>.pem`, the certificate, when keyless)."""
        sig, cert = path.with_name(path.name + ".sig"), path.with_name(path.name + ".pem")
        argv = [str(self.path), "sign-blob", *self._key_flags(key), "--yes",
                "--output-signature", str(sig)]  # fmt: skip
        if key is None:
            argv += ["--output-certificate", str(cert)]
        run([*argv, str(path)], timeout=SIGN_TIMEOUT, env=self._env(password))
        return (sig,) if key is not None else (sig, cert)

    def verify_blob(self, path: Path, public_key: Path) -> Verdict:
        """Check `<file>.sig` against `public_key`; a tool failure raises ToolError."""
        sig = path.with_name(path.name + ".sig")
        done = run(
            [str(self.path), "verify-blob", "--key", str(public_key), "--signature", str(sig),
             "--insecure-ignore-tlog", str(path)],
            timeout=SIGN_TIMEOUT,
            env=self._env(),
            check=False,
        )  # fmt: skip
        return self._verdict(done)

    def _verdict(self, done: Completed) -> Verdict:
        if done.returncode == 0:
            return Verdict(True, done.stdout)
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        if _VERIFICATION_FAILURES.search(done.stderr):
            return Verdict(False, tail)
        raise ToolError(done.argv, done.returncode, tail)

    def verify(self, ref: str, public_key: Path) -> Verdict:
        """Check the signature of `ref`; a tool failure (not a "no") raises ToolError."""
        done = run(
            [str(self.path), "verify", "--key", str(public_key), "--insecure-ignore-tlog",
             *self._registry_flags(), ref],
            timeout=SIGN_TIMEOUT,
            env=self._env(),
            check=False,
        )  # fmt: skip
        return self._verdict(done)

    def verify_attestation(self, ref: str, public_key: Path, kind: str) -> Verdict:
        """Check that `ref` carries a signed attestation of type `kind`."""
        done = run(
            [str(self.path), "verify-attestation", "--key", str(public_key), "--type", kind,
             "--insecure-ignore-tlog", *self._registry_flags(), ref],
            timeout=SIGN_TIMEOUT,
            env=self._env(),
            check=False,
        )  # fmt: skip
        return self._verdict(done)


def locate_cosign(*, insecure_registry: bool = True) -> Cosign:
    """The pinned cosign build (`scripts/tools.sh cosign`), or a ToolError saying how to get it."""
    version = pinned_version("cosign")
    for attempt in range(2):
        candidates = [bin_dir() / f"cosign-{version}", bin_dir() / "cosign"]
        on_path = shutil.which("cosign")
        if on_path:
            candidates.append(Path(on_path))
        for path in candidates:
            if not (path.is_file() and os.access(path, os.X_OK)):
                continue
            done = run([str(path), "version"], timeout=QUICK_TIMEOUT, check=False)
            if reports_version(done.stdout + done.stderr, version):
                return Cosign(path, version, insecure_registry)
            log.warning("cosign at %s is not the pinned %s; ignoring it", path, version)
        if attempt == 0 and provision.enabled():
            provision.build(["cosign"])  # built on first use (pipeline.tools.provision)
    raise ToolError(
        ["cosign"],
        None,
        "",
        f"{version} not found in {bin_dir()} or on PATH; build it with `scripts/tools.sh cosign`",
    )
