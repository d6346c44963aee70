"""Files a minimal image leaves out: named groups of dpkg `path-exclude` patterns.

Why dpkg path-exclude and not `rm` after the install: dpkg itself skips these paths when
it unpacks a package, so they never reach a layer, every later upgrade keeps them out
(the rules stay in the image under /etc/dpkg/dpkg.cfg.d/, as Debian's own slim images do
for documentation), and the dpkg database and apt's dependency state stay whole: the
packages remain installed as far as dpkg and apt know, so `apt-get check` and the gate's
dist-upgrade simulation see a consistent system, and scanners still list (and judge) every
package, including the ones whose files were left out.

The groups, and why each is safe to leave out of a minimal PostgreSQL image:

* `jit` - PostgreSQL's LLVM JIT provider (`llvmjit.so`, the bitcode of the server and its
  extensions) and the libraries only it loads (libLLVM, and Z3 which only libLLVM uses).
  Debian's postgresql-NN packages hard-depend on libllvmNN, so the packages stay
  installed; PostgreSQL probes for its provider library and, when the file is absent,
  runs without JIT and says so only in `pg_jit_available()` (false). About 180 MB on
  trixie. CloudNativePG does the same for PostgreSQL 18 by not installing the split-out
  `postgresql-18-jit` package, which Debian's PostgreSQL 15 and 17 do not have.
* `locales` - the locale definitions and character maps `locale-gen` compiles from. The
  C.UTF-8 locale is built into glibc (since 2.35) and needs neither; the `standard`
  flavour adds every compiled locale with `locales-all`. About 16 MB.
"""

from __future__ import annotations

from collections.abc import Mapping

DPKG_EXCLUDES: Mapping[str, tuple[str, ...]] = {
    "jit": (
        "/usr/lib/postgresql/*/lib/llvmjit*",
        "/usr/lib/postgresql/*/lib/bitcode/*",
        "/usr/lib/*/libLLVM*",
        "/usr/lib/llvm-*/*",
        "/usr/lib/*/libz3.so*",
    ),
    "locales": (
        "/usr/share/i18n/locales/*",
        "/usr/share/i18n/charmaps/*",
    ),
}

EXCLUDES_FILE = "/etc/dpkg/dpkg.cfg.d/drydock-excludes"


def exclude_lines(groups: tuple[str, ...]) -> tuple[str, ...]:
    """The dpkg configuration lines for `groups` (in the given order); KeyError if unknown."""
    lines: list[str] = []
    for group in groups:
        lines.append(f"# {group}: left out by Drydock (pipeline/models/excludes.py says why)")
        lines += [f"path-exclude {pattern}" for pattern in DPKG_EXCLUDES[group]]
    return tuple(lines)
