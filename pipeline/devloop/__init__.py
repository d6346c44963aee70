"""The local loop around the included operator, on the local cluster and its real node.

`manifests` applies YAML documents with server-side apply (a tiny `kubectl apply -f`),
`operator_image` finds the published operator image the instance pods copy their manager
from, and `status` renders what the Clusters report. `drydock dev ...` is their command
line.
"""
