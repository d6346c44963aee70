"""JUnit XML: one test suite per image, one test case per control, for CI test dashboards.

fail -> <failure>, error and unverified -> <error>, manual -> <skipped> (a person must
check it), waived -> passed with the waiver in system-out. A "gate" test case per image
carries the verdict itself (policy-blocking findings, scanner errors).
"""

from __future__ import annotations

from typing import ClassVar
from xml.etree import ElementTree as ET

from pipeline.models.compliance import ControlResult, ControlStatus, GateReport, ImageVerdict
from pipeline.report import provenance
from pipeline.report.base import Renderer


def _case(suite: ET.Element, image: str, name: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"classname": image, "name": name, "time": "0"})


def _control_case(suite: ET.Element, image: str, r: ControlResult) -> None:
    case = _case(suite, image, f"{r.control.id} {r.control.title}")
    text = "\n".join(r.evidence)
    message = f"{r.control.id} {r.status.value}" + (" (mandatory)" if r.control.mandatory else "")
    if r.status == ControlStatus.FAIL:
        ET.SubElement(case, "failure", {"message": message, "type": "fail"}).text = text
    elif r.status in {ControlStatus.ERROR, ControlStatus.UNVERIFIED}:
        ET.SubElement(case, "error", {"message": message, "type": r.status.value}).text = text
    elif r.status == ControlStatus.MANUAL:
        ET.SubElement(case, "skipped", {"message": text or "manual"})
    elif r.status == ControlStatus.WAIVED:
        ET.SubElement(case, "system-out").text = "\n".join(
            ["waived:", *r.waivers, "evidence:", *r.evidence]
        )
    else:
        ET.SubElement(case, "system-out").text = text


def _properties(suite: ET.Element, report: GateReport, verdict: ImageVerdict) -> None:
    props = ET.SubElement(suite, "properties")
    values = [
        ("scanners", provenance.scanners_text(report)),
        ("vulnerability-db", provenance.db_text(report)),
        ("os", provenance.os_text(verdict)),
    ]
    for name, value in values:
        ET.SubElement(props, "property", {"name": name, "value": value})


def _suite(root: ET.Element, verdict: ImageVerdict, report: GateReport) -> None:
    suite = ET.SubElement(root, "testsuite", {"name": verdict.image})
    _properties(suite, report, verdict)
    for r in verdict.controls:
        _control_case(suite, verdict.image, r)
    gate = _case(suite, verdict.image, "gate")
    detail = "\n".join([*verdict.reasons, *verdict.expired_waivers])
    if verdict.errors:
        ET.SubElement(gate, "error", {"message": "scanner error", "type": "error"}).text = detail
    elif verdict.reasons:
        message = f"{len(verdict.reasons)} blocking reason(s)"
        ET.SubElement(gate, "failure", {"message": message, "type": "fail"}).text = detail
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    for tag, attr in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    suite.set("time", "0")


class JunitRenderer(Renderer):
    name: ClassVar[str] = "junit"
    media_type: ClassVar[str] = "application/xml"
    extension: ClassVar[str] = "xml"

    def render(self, report: GateReport) -> str:
        root = ET.Element("testsuites", {"name": "drydock-compliance-gate"})
        for verdict in report.images:
            _suite(root, verdict, report)
        for attr in ("tests", "failures", "errors", "skipped"):
            root.set(attr, str(sum(int(s.get(attr, "0")) for s in root.findall("testsuite"))))
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"
