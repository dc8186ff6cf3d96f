"""Per-container metrics without hammering Proxmox.

- `models.ContainerSample`: the latest figures of each container, one row each, written
  by `poll.metrics_poll_site` in one bulk write per poll from ONE
  `GET /cluster/resources?type=vm` per site (beat task `containers.poll_metrics`,
  every METRICS_POLL_INTERVAL seconds): the API calls per poll do not grow with the
  number of containers.
- `history`: Proxmox's own RRD (`rrddata`), read when someone looks, cached for
  METRICS_HISTORY_CACHE_SECONDS, never copied into the database; swap (not in the bulk
  call) read live from `status/current`, cached the same way.
"""
