"""Stages: each arrow of the data flow, composed from the feature packages.

A stage takes typed input and returns typed output; it never reaches back into an
earlier stage. `run` composes them into the nightly pipeline.
"""
