"""Security monitoring with Wazuh: the portal's half (docs/wazuh.md).

The manager and its indexer run on their own hosts; the portal configures one manager per
site (`models.WazuhManager`, admin), keeps its own record of every agent it enrolled
(`models.WazuhAgent`, the mapping from agent to container), and talks to both over HTTPS:

- `names`: the agent name of a container (`agent_name_for`), group name rules. Pure.
- `client`: `WazuhClient` (the manager API on :55000: login with JWT renewal, paged agent
  lists, the status summary, delete) and `IndexerClient` (`wazuh-alerts-*` searches), with
  errors mapped into portal/errors.py (`WazuhUnavailable` is worth a retry, `WazuhError`
  is not).
- `selectors`: `manager_for_site` (None: the feature is off for that site), agent reads.
- `services`: `wazuh_manager_save`, `wazuh_manager_test` (the admin's writes and action).
- `sweep`: `wazuh_sweep_site` / `wazuh_sweep_all`, the daily removal of the agents of
  containers that are gone, failing closed, with a stored `WazuhSweepRun` report.
- `poll`: the status poll (beat `containers.poll_wazuh`): one paged `GET /agents` per
  site, one UPDATE of the portal's agent rows, the nodes' own agents (`WazuhNodeAgent`).
- `alerts`: the disconnection alert after each poll (a `ContainerAlert`, notified).
- `security`: what the container page, the API and the CLI show (the agent, a page of
  its alerts, cached), and the admin's top alerts; `admin_status`: the admin's texts.
- `enrolment`: the script a new container's agent is enrolled with, one strategy per
  `EnrolmentMode` (4.x password, 5.x token); run by containers/jobs/wazuh.py. Pure.
- `agents`: the agent records' writes as the create and delete jobs' steps make them.

With no enabled manager for a site, nothing of this runs and nothing mentions Wazuh.
"""
