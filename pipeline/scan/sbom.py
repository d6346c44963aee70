"""Read the SBOMs Trivy writes (CycloneDX JSON, SPDX JSON) into one small model.

Publishing attaches the SBOM as written; this parser exists so Drydock can check that the
document it is about to attach is a readable BOM that lists the image's packages, and so
reports can count components without caring which format was produced.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ScanError
from pipeline.models.sbom import Sbom, SbomComponent
from pipeline.scan.base import validate

NAME = "trivy-sbom"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _CdxComponent(_Model):
    type: str
    name: str
    version: str = ""
    purl: str = ""


class _CdxMetadata(_Model):
    component: _CdxComponent | None = None


class CycloneDx(_Model):
    bomFormat: str  # noqa: N815 - CycloneDX field name
    specVersion: str  # noqa: N815
    metadata: _CdxMetadata = Field(default_factory=_CdxMetadata)
    components: list[_CdxComponent] | None = None


class _SpdxRef(_Model):
    referenceType: str = ""  # noqa: N815 - SPDX field name
    referenceLocator: str = ""  # noqa: N815


class _SpdxPackage(_Model):
    name: str
    versionInfo: str = ""  # noqa: N815
    primaryPackagePurpose: str = ""  # noqa: N815
    externalRefs: list[_SpdxRef] | None = None  # noqa: N815


class Spdx(_Model):
    spdxVersion: str  # noqa: N815
    name: str
    packages: list[_SpdxPackage] | None = None


def parse_cyclonedx(text: str) -> Sbom:
    """CycloneDX JSON -> Sbom (the image itself, in metadata.component, is the subject)."""
    bom = validate(NAME, CycloneDx, text)
    if bom.bomFormat != "CycloneDX":
        raise ScanError(f"{NAME}: bomFormat is {bom.bomFormat!r}, expected 'CycloneDX'")
    subject = bom.metadata.component.name if bom.metadata.component else ""
    return Sbom(
        format="CycloneDX",
        spec_version=bom.specVersion,
        subject=subject,
        components=tuple(
            SbomComponent(c.name, c.version, c.purl, c.type) for c in bom.components or ()
        ),
    )


def _purl(package: _SpdxPackage) -> str:
    for ref in package.externalRefs or ():
        if ref.referenceType == "purl":
            return ref.referenceLocator
    return ""


def parse_spdx(text: str) -> Sbom:
    """SPDX JSON -> Sbom (every package, the described artifact included, is a component)."""
    doc = validate(NAME, Spdx, text)
    if not doc.spdxVersion.startswith("SPDX-"):
        raise ScanError(f"{NAME}: spdxVersion is {doc.spdxVersion!r}, expected 'SPDX-x.y'")
    return Sbom(
        format="SPDX",
        spec_version=doc.spdxVersion,
        subject=doc.name,
        components=tuple(
            SbomComponent(p.name, p.versionInfo, _purl(p), p.primaryPackagePurpose)
            for p in doc.packages or ()
        ),
    )
