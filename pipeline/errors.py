"""One exception tree for Drydock; only the CLI turns these into exit codes.

Exit codes: 0 ok, 1 gate failed, 2 bad input or configuration, 3 tool or infrastructure
failure. Each error carries the code its class stands for, so the CLI never guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class DrydockError(Exception):
    """Base of every error Drydock raises on purpose."""

    exit_code = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where, which field, and why."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class InputError(DrydockError):
    """Bad input (descriptor, policy, waiver, catalog, CLI argument): nothing was changed."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("<input>", "-", problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class DescriptorError(InputError):
    """An image descriptor under images/ is invalid."""


class PolicyError(InputError):
    """The scan policy, a waiver or the control catalogue is invalid."""


class ToolError(DrydockError):
    """An external process failed, timed out or could not be started."""

    exit_code = 3

    def __init__(
        self, argv: Sequence[str], returncode: int | None, stderr_tail: str, reason: str = ""
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        what = reason or (f"exit code {returncode}" if returncode is not None else "failed")
        msg = f"{self.argv[0] if self.argv else '?'} {what}: {' '.join(self.argv)}"
        if stderr_tail:
            msg += f"\n{stderr_tail}"
        super().__init__(msg)


class BuildError(DrydockError):
    """An image build failed; the message names the target."""


class ScanError(DrydockError):
    """A scanner crashed, timed out or returned output that could not be parsed."""


class ArchiveError(DrydockError):
    """The Debian archive could not be read, or what it served did not verify
    (bad signature, expired Release, a file whose hash differs from the signed one)."""


class GateFailed(DrydockError):  # noqa: N818 - the name says what happened
    """At least one image did not pass its gate."""

    exit_code = 1


class VerificationFailed(DrydockError):  # noqa: N818 - named like GateFailed, its sibling
    """A published image's digest, signature or attestation did not verify."""

    exit_code = 1


class RegistryError(DrydockError):
    """A registry did not answer, refused a request or served something inconsistent."""


class PublishError(RegistryError):
    """Pushing, verifying or promoting an image failed."""


class CatalogError(DrydockError):
    """Generating or applying an image catalog failed."""
