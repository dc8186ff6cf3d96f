"""Health and Prometheus: `/readyz` (readiness.py) and `/metrics` (metrics.py).

Both read only what the portal already records: the database, the broker's answer to a
ping, the nodes as the beat probe last found them (`containers.probe_nodes`), and the
gateway's applies (GatewayState, ConfigRevision). Neither calls Proxmox or a gateway,
and each runs a fixed number of queries, however many sites, nodes, containers or jobs.
"""
