"""Drydock's included operator: PostgreSQL Clusters that follow ImageCatalog digests.

A folder named `operator/` holds this package because `operator` is the name of a standard
library module. Run it with `kopf run -m drydock_operator.handlers`.
"""
