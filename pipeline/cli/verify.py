"""`drydock verify IMAGE`: check a published image's digest, signature and SBOM attestation.

Exit codes: 0 when the digest IMAGE names is signed and attested under the public key
(and equals --expect-digest when given); 1 when any of that does not hold; 3 when the
check could not be made (registry unreachable, cosign missing or failing).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli import exits
from pipeline.publish.sign import default_key_dir, split_reference, verify_image
from pipeline.tools.cosign import locate_cosign
from pipeline.tools.registry import RegistryClient


@click.command("verify")
@click.argument("image")
@click.option(
    "--key",
    "public_key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="cosign public key (default: cosign.pub in $DRYDOCK_CACHE/keys).",
)
@click.option("--expect-digest", default=None, help="Fail unless IMAGE names this sha256 digest.")
@click.option(
    "--attestation/--no-attestation",
    default=True,
    show_default=True,
    help="Also require the signed CycloneDX SBOM attestation.",
)
@click.option(
    "--insecure/--secure",
    "insecure",
    default=None,
    help="Plain http to the registry (default: only for loopback addresses).",
)
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per registry request.")
@exits
def verify(
    *,
    image: str,
    public_key: Path | None,
    expect_digest: str | None,
    attestation: bool,
    insecure: bool | None,
    timeout: float,
) -> None:
    """Verify that IMAGE (registry/repository:tag or @digest) is signed and attested."""
    registry, _, _ = split_reference(image)
    client = RegistryClient.from_environment(registry, insecure=insecure, timeout=timeout)
    cosign = locate_cosign(insecure_registry=client.base.startswith("http:"))
    key = public_key or default_key_dir() / "cosign.pub"
    verified = verify_image(
        cosign, client, image, key, expect_digest=expect_digest, attestation=attestation
    )
    click.echo(
        json.dumps(
            {
                "image": image,
                "reference": verified.reference,
                "digest": verified.digest,
                "signature": verified.signature,
                "attestation": verified.attestation if attestation else None,
            }
        )
    )


def register(main: click.Group) -> None:
    main.add_command(verify)
