"""The warm pool (issue #18): stopped CTs made ahead, per site, template and node, so that
a create can take one instead of waiting for Proxmox to extract a template (docs/pool.md).

- `models`: `PoolTarget` (how many members a template keeps on a node; 0, the default,
  is off) and `PoolMember` (one pre-created CT: its VMID, node, the template volid it was
  made from). Members are not containers: no owner, no name, no address.
- `services`: the target's one write (`pool_target_set`), and the member rows' writes
  (a VMID reserved under the site's lock, ready, gone).
- `refill`: the pass the low-priority queue `pool` runs (beat `containers.refill_pools`):
  recycle members of a changed or disabled template, trim above the target, make the
  missing ones on nodes that are active and have room; a node that fails stops its pass.
- `selectors`: what the admin and /metrics show of each pool.
- `claim`: a create takes a ready member (a conditional update), counts the hit or miss,
  and a later check settles the member of a claim whose undo could not reach Proxmox;
  the job's side is `containers/jobs/claim.py`.
"""
