"""Build stage: Debian bases from packages, then every image on them, as a DAG."""
