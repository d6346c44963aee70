"""The local loop around the included operator, for people without a real cluster.

`manifests` applies YAML documents with server-side apply (a tiny `kubectl apply -f`),
`kubelet` stands in for the kubelet the dev control plane does not have (an instance pod
becomes Ready only when its image is in its registry at that digest), and `status` renders
what the Clusters report. `drydock dev ...` is their command line.
"""
