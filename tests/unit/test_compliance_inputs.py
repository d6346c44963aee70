"""Assembling an ImageScan: what ran is recorded, failures become scanner errors."""

from __future__ import annotations

from pathlib import Path

from compliance_helpers import base_entries, clean_config, image_tar, layer

from pipeline.compliance.inputs import image_scan, native_scan, scanner_error
from pipeline.compliance.native import NativeInputs, UpdateEvidence
from pipeline.errors import ScanError
from pipeline.models.compliance import RAN_DOCKLE, NativeSettings, TrivyClass, ran_native, ran_trivy
from pipeline.models.findings import Finding, Kind, Severity, Source
from pipeline.scan.base import ScanOutput

SETTINGS = NativeSettings(allowed_ports=("5432/tcp",))


def test_native_scan_reads_a_tarball(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(image_tar(clean_config(), [layer(base_entries())]))
    result, errors = native_scan(archive, SETTINGS, NativeInputs(updates=UpdateEvidence("t")))
    assert errors == ()
    assert result.findings == ()
    assert ran_native("DD-SETUID") in result.ran


def test_an_unreadable_tarball_is_a_native_scanner_error(tmp_path: Path) -> None:
    archive = tmp_path / "image.tar"
    archive.write_bytes(b"garbage")
    result, errors = native_scan(archive, SETTINGS, NativeInputs())
    assert result.ran == frozenset()
    (error,) = errors
    assert error.source == Source.NATIVE
    assert "not a tar archive" in error.message


def test_image_scan_records_what_ran() -> None:
    hit = Finding("CIS-DI-0001", Source.DOCKLE, Kind.CHECKPOINT, Severity.MEDIUM, "root")
    outputs = [ScanOutput("dockle", "x:1", (hit,), "{}"), ScanOutput("trivy", "x:1", (), "{}")]
    failed = scanner_error("clair", ScanError("clair: 503"))
    scan = image_scan("x:1", outputs, None, [failed], digest="sha256:" + "0" * 64)
    assert scan.findings == (hit,)
    assert scan.ran == {RAN_DOCKLE, *(ran_trivy(c) for c in TrivyClass)}
    assert scan.errors[0].source == Source.CLAIR
    assert scan.errors[0].message == "clair: 503"
