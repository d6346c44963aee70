"""ImageCatalog / ClusterImageCatalog: desired catalogs from published images, applied safely.

`published` reads PublishedImage records at the boundary, `generate` decides the desired
catalogs (pure), `crd` holds the CRD schema they must satisfy, `validate` checks them
offline, `files` writes them, `registry` proves every digest exists, and `apply` writes
them to a cluster with server-side apply, one atomic write per catalog.
"""
