"""Drydock: build, harden, scan, gate and publish PostgreSQL operator and operand images."""

__version__ = "0.1.0"
