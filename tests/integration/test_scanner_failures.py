"""Fail closed: a scanner that prints garbage, exits non-zero or hangs is a ScanError that
names the scanner, never an empty list of findings. Also: the tool locator refuses a
binary that is not the pinned version and says how to get the right one.

The "scanners" here are small shell scripts in tmp_path standing in for Dockle and Trivy,
handed to the real adapters through ScanSettings.binaries.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pipeline.errors import ScanError, ToolError
from pipeline.scan.base import Scanner, ScanSettings
from pipeline.scan.scanners import SCANNERS, make_scanner
from pipeline.tools.locate import locate, pinned_version

pytestmark = pytest.mark.integration

BEHAVIOURS = {
    "garbage": "echo 'this is not a report'",
    "truncated": 'printf \'{"SchemaVersion": 2, "Results": [{"Tar\'',
    "exit2": "echo 'FATAL something broke' >&2; exit 2",
    "hang": "exec sleep 60",
}


def fake_binary(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("scanner", ["dockle", "trivy"])
@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
def test_broken_scanner_is_a_scan_error(tmp_path: Path, scanner: str, behaviour: str) -> None:
    binary = fake_binary(tmp_path, scanner, BEHAVIOURS[behaviour])
    settings = ScanSettings(cache_dir=tmp_path / "cache", timeout=3, binaries=((scanner, binary),))
    adapter: Scanner = make_scanner(scanner, settings)
    image = tmp_path / "image.tar"
    image.write_bytes(b"")
    with pytest.raises(ScanError, match=rf"^{scanner}: ") as err:
        adapter.scan(image, "example/image:1")
    expected = {
        "garbage": "not JSON",
        "truncated": "not JSON",
        "exit2": "exit code 2",
        "hang": "timed out",
    }[behaviour]
    if scanner == "trivy" and behaviour in {"garbage", "truncated"}:
        # Trivy first fetches its DB: a "download" that exits 0 but leaves no DB behind is
        # already an error, before any report is parsed.
        expected = "no vulnerability DB"
    assert expected in str(err.value)


def test_every_scanner_name_maps_to_its_class(tmp_path: Path) -> None:
    assert set(SCANNERS) == {"dockle", "trivy", "clair"}
    settings = ScanSettings(cache_dir=tmp_path, clair_url="http://127.0.0.1:1")
    for name, cls in SCANNERS.items():
        assert cls.name == name
        assert isinstance(make_scanner(name, settings), cls)


def test_locate_finds_the_pinned_tools() -> None:
    for name in ("dockle", "trivy", "trivy-db", "crane", "oras"):
        tool = locate(name)
        assert tool.version == pinned_version(name)
        assert tool.path.is_file()


def test_locate_refuses_other_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "cache" / "bin"
    bin_dir.mkdir(parents=True)
    fake_binary(bin_dir, "dockle", "echo 'dockle version 0.0.1'")
    monkeypatch.setenv("DRYDOCK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError, match=r"scripts/tools\.sh dockle") as err:
        locate("dockle")
    assert pinned_version("dockle") in str(err.value)
    fake_binary(bin_dir, "dockle", f"echo 'dockle version {pinned_version('dockle')[1:]}'")
    assert locate("dockle").path == bin_dir / "dockle"
    with pytest.raises(ToolError, match="not a tool Drydock knows"):
        locate("nmap")
