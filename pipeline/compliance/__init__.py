"""Compliance: native checks, findings -> CIS/DISA controls, policy, waivers and the gate.

Everything here is pure except reading YAML and `docker save` tarballs. The entry points:

* `load_controls`, `load_policy`, `load_waivers` - scan-config/*.yaml, validated;
* `check_image_archive` / `run_native_checks` - Drydock's own checks of an image;
* `native_scan`, `image_scan` - assemble one image's `ImageScan` (findings + what ran);
* `evaluate(images, controls, policy, waivers, today) -> GateReport` - the gate.
"""

from pipeline.compliance.config import load_controls, load_policy, load_waivers
from pipeline.compliance.gate import evaluate, judge_image
from pipeline.compliance.inputs import image_scan, native_scan, scanner_error
from pipeline.compliance.native import (
    NativeInputs,
    NativeResult,
    UpdateEvidence,
    check_image_archive,
    parse_apt_simulation,
    run_native_checks,
)

__all__ = [
    "NativeInputs",
    "NativeResult",
    "UpdateEvidence",
    "check_image_archive",
    "evaluate",
    "image_scan",
    "judge_image",
    "load_controls",
    "load_policy",
    "load_waivers",
    "native_scan",
    "parse_apt_simulation",
    "run_native_checks",
    "scanner_error",
]
