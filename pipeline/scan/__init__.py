"""Scanners: one module per scanner, each a pure `parse_*` function plus a thin adapter.

`pipeline.scan.scanners.SCANNERS` maps a scanner name to its class.
"""
