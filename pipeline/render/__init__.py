"""Jinja2 templates -> Dockerfile text (pure) and the build context beside it."""
