"""The apt sources of a base image, from the mirror `pipeline.archive.mirrors` chooses.

Kept as the build stage's entry point; the mirror discovery itself lives with the rest
of the Debian archive client, which the vulnerability feed shares.
"""

from pipeline.archive.mirrors import (
    Mirrors,
    choose,
    host_mirrors,
    parse_sources,
    resolve,
    sources_list,
)

__all__ = ["Mirrors", "choose", "host_mirrors", "parse_sources", "resolve", "sources_list"]
