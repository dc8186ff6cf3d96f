"""The Wazuh steps of the create and delete jobs (docs/wazuh.md). They are planned only
while the container's site has an enabled manager (`manager_for_site`); otherwise the jobs
are exactly as without Wazuh, and nothing they log mentions it.

**Enrolment** (create, after the gateway step: the container runs and answers on its
address). Over SSH with the portal's deploy key, which the create call put among the
container's keys for this step (`create_keys`), the step runs the script of the manager's
enrolment mode (containers/wazuh/enrolment.py): it writes the agent's configuration, hands
over the secret from its standard input, (re)starts the agent and waits for its key. The
secret is in no command line and every line of output is masked with it before the job
log sees it. Then the deploy key is taken out of the container again, unless the owner's
keys held it (a LaunchPad deployment's container keeps it).

Enrolment never fails the create: the container is usable without its agent.
- no agent in the template (no /var/ossec): a warning; the record stays not enrolled;
- the manager refused (a wrong password, an unknown group): a warning; not enrolled;
- the manager or the container unreachable: retried with the job's backoff while the job
  has attempts left, then a warning; not enrolled, `last_error` saying why. A real agent
  keeps trying on its own; the status poll sees it once it is in.

**Removal** (delete, after the container is destroyed and released: a running agent whose
key is deleted would enrol again). The agent's id is looked up by its name and deleted
(`DELETE /agents?agents_list=<id>&status=all&older_than=0s`); only agents the portal has a
`WazuhAgent` record of are ever looked up. The manager unreachable: retried with the
job's backoff while the job has attempts left; then the delete still completes and the
record is `removal_pending` for the sweep. A refusal is recorded the same way at once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

from containers.deploy_key import deploy_public_key
from containers.deploy_logs import Masker
from containers.models import LogLevel, StepState
from containers.remote import Remote, shared
from containers.wazuh import enrolment
from containers.wazuh.agents import (
    wazuh_agent_enrolled,
    wazuh_agent_enrolling,
    wazuh_agent_not_enrolled,
    wazuh_agent_removal_pending,
    wazuh_agent_removed,
)
from containers.wazuh.client import WazuhClient, WazuhError, WazuhUnavailable
from containers.wazuh.models import EnrolmentMode
from containers.wazuh.selectors import agent_for_container, agent_groups_for, manager_for_site
from portal.errors import UpstreamUnavailable

if TYPE_CHECKING:
    from containers.models import Container
    from containers.wazuh.models import WazuhAgent, WazuhManager

    from .context import JobContext

ENROL = "wazuh_enrol"
REMOVE = "wazuh_remove"
ENROL_STEP = (ENROL, "Enrol its Wazuh agent")
REMOVE_STEP = (REMOVE, "Remove its Wazuh agent from the manager")
SSH_UNREACHABLE = 255
BAD_SECRET = 84  # the site's secret cannot be sent (not one line): nothing was run
UNKNOWN_AGENT = 1701  # DELETE /agents failed item: the agent does not exist


# -- planning ------------------------------------------------------------------------------
def create_steps(container: Container | None) -> tuple[tuple[str, str], ...]:
    """The enrolment step, if the container's site has an enabled manager."""
    if container is None or manager_for_site(container.site_id) is None:
        return ()
    return (ENROL_STEP,)


def delete_steps(container: Container | None) -> tuple[tuple[str, str], ...]:
    """The removal step, if the site has an enabled manager and the portal enrolled an
    agent for the container that is not removed yet."""
    if container is None or container.pk is None:
        return ()
    if manager_for_site(container.site_id) is None or agent_for_container(container) is None:
        return ()
    return (REMOVE_STEP,)


def planned(ctx: JobContext, name: str) -> bool:
    return any(s["name"] == name for s in ctx.job.steps)


def create_keys(ctx: JobContext) -> str:
    """The keys the create call puts in the container: the owner's, and the portal's deploy
    key when the enrolment step will log in with it."""
    keys = ctx.container.ssh_public_keys
    if not planned(ctx, ENROL):
        return keys
    deploy = deploy_public_key()
    if deploy.split()[1] in keys:
        return keys
    return "\n".join(k for k in (keys.rstrip("\n"), deploy) if k)


# -- enrolment -----------------------------------------------------------------------------
def enrol_step(ctx: JobContext) -> None:
    if planned(ctx, ENROL):
        ctx.run_step(ENROL, lambda st: _Enrolment(ctx).run(st))


class _Enrolment:
    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.c = ctx.container
        self.lines: list[str] = []
        self._beat = time.monotonic()

    def run(self, st: dict[str, Any]) -> str | None:
        ctx, c = self.ctx, self.c
        manager = manager_for_site(c.site_id)
        if manager is None:
            ctx.log("the site's Wazuh manager was turned off meanwhile; nothing to enrol")
            return StepState.SKIPPED
        groups = agent_groups_for(manager, c.template)
        agent = wazuh_agent_enrolling(container=c, groups=groups)
        if agent.agent_id:  # an earlier attempt enrolled it; its answer was lost
            ctx.log(f"already enrolled: agent {agent.agent_id} {agent.name}")
            return None
        version = EnrolmentMode(manager.enrolment_mode).label.split(":")[0]
        ctx.log(
            f"agent {agent.name}, group(s) {', '.join(groups)}, manager "
            f"{manager.registration_host}:{manager.enrolment_port} ({version})"
        )
        own_key = deploy_public_key().split()[1] in c.ssh_public_keys
        remote = Remote.for_container(c.ip, container_id=c.pk)
        with shared(remote) as remote:
            try:
                code = self._enrol(remote, manager, agent, groups)
            except UpstreamUnavailable as exc:
                code = SSH_UNREACHABLE
                self.lines.append(exc.message)
            final = self._outcome(code, agent) or ctx.attempt >= settings.JOB_MAX_ATTEMPTS
            if not final:
                reason = self._reason(code)
                wazuh_agent_not_enrolled(agent=agent, reason=reason, final=False)
                raise WazuhUnavailable(f"enrolling the Wazuh agent: {reason}")
            if code in (enrolment.UNREACHABLE, SSH_UNREACHABLE):
                self._give_up(agent, code)
            if not own_key:
                self._forget_key(remote, reachable=code != SSH_UNREACHABLE)
        return None

    def _enrol(
        self, remote: Remote, manager: WazuhManager, agent: WazuhAgent, groups: list[str]
    ) -> int:
        strategy = enrolment.strategy_for(manager.enrolment_mode)
        config = enrolment.AgentConfig(
            manager_host=manager.registration_host,
            agent_port=manager.agent_port,
            enrolment_port=manager.enrolment_port,
            name=agent.name,
            groups=tuple(groups),
        )
        secret = manager.enrolment_secret
        try:
            stdin = strategy.stdin(secret)
        except ValueError:
            self.lines.append("the site's enrolment secret is not one line; fix it in the admin")
            return BAD_SECRET
        mask = Masker([secret] if len(secret) >= 3 else [])
        wait = settings.WAZUH_ENROL_WAIT_SECONDS
        remote.wait_ready(timeout=settings.DEPLOY_SSH_WAIT_SECONDS, on_tick=self.tick)

        def line(text: str) -> None:
            text = mask(text)
            self.lines.append(text)
            self.ctx.log(text)

        return remote.run(
            strategy.script(config, wait_seconds=wait),
            stdin=stdin,
            on_line=line,
            on_tick=self.tick,
            timeout=wait + 60,
        )

    def _outcome(self, code: int, agent: WazuhAgent) -> bool:
        """Record a final outcome (True), or say the step is worth another try (False)."""
        ctx = self.ctx
        if code == enrolment.ENROLLED:
            agent_id = enrolment.agent_id_in(self.lines)
            wazuh_agent_enrolled(agent=agent, agent_id=agent_id)
            ctx.log(f"enrolled: agent {agent_id or '(id unknown)'} {agent.name}")
            return True
        if code == enrolment.NOT_INSTALLED:
            reason = "never enrolled: the template has no Wazuh agent (/var/ossec is missing)"
            wazuh_agent_not_enrolled(agent=agent, reason=reason)
            ctx.log(
                f"{self.c.hostname} is not watched by Wazuh: its template has no agent "
                "installed (/var/ossec is missing); install the agent in the template",
                level=LogLevel.WARNING,
            )
            return True
        if code in (enrolment.UNREACHABLE, SSH_UNREACHABLE):
            return False
        reason = f"the enrolment failed: {self._last_line(code)}"
        if code == enrolment.REFUSED:
            reason = f"the manager refused the enrolment: {self._last_line(code)}"
        wazuh_agent_not_enrolled(agent=agent, reason=reason)
        ctx.log(f"{self.c.hostname}'s agent is not enrolled: {reason}", level=LogLevel.WARNING)
        return True

    def _reason(self, code: int) -> str:
        if code == SSH_UNREACHABLE:
            return f"the container did not answer over SSH ({self._last_line(code)})"
        return f"the agent could not reach the manager ({self._last_line(code)})"

    def _last_line(self, code: int) -> str:
        said = [t for t in self.lines if t.strip()]
        return said[-1].strip()[:300] if said else f"exit status {code}"

    def _give_up(self, agent: WazuhAgent, code: int) -> None:
        reason = f"not enrolled after {self.ctx.attempt} attempts: {self._reason(code)}"
        wazuh_agent_not_enrolled(agent=agent, reason=reason)
        self.ctx.log(
            f"{self.c.hostname} is created without its Wazuh agent enrolled: {reason}",
            level=LogLevel.WARNING,
        )

    def _forget_key(self, remote: Remote, *, reachable: bool) -> None:
        """Take the portal's deploy key out of the container (it was there for this step)."""
        code = 1
        if reachable:
            code = remote.run(enrolment.forget_key_command(deploy_public_key()), timeout=30)
        if code == 0:
            self.ctx.log("removed the portal's key from the container's authorized keys")
        else:
            self.ctx.log(
                "the portal's deploy key is still among the container's authorized keys "
                "(root can remove the line ending in cluster-portal-deploy)",
                level=LogLevel.WARNING,
            )

    def tick(self) -> None:
        if time.monotonic() - self._beat >= 1.0:
            self._beat = time.monotonic()
            self.ctx.heartbeat()


# -- removal -------------------------------------------------------------------------------
def remove_step(ctx: JobContext) -> None:
    if planned(ctx, REMOVE):
        ctx.run_step(REMOVE, lambda st: _remove(ctx))


def _remove(ctx: JobContext) -> str | None:
    agent = agent_for_container(ctx.container)
    if agent is None:
        ctx.log("its agent is already removed")
        return StepState.SKIPPED
    manager = manager_for_site(ctx.container.site_id)
    if manager is None:
        reason = "the site's Wazuh manager is turned off"
        wazuh_agent_removal_pending(agent=agent, reason=reason)
        ctx.log(f"{reason}: agent {agent.name} is left for the sweep", level=LogLevel.WARNING)
        return None
    try:
        _delete_on_manager(ctx, WazuhClient.for_manager(manager), agent)
    except WazuhUnavailable as exc:
        if ctx.attempt < settings.JOB_MAX_ATTEMPTS:
            raise
        reason = f"the manager did not answer ({exc.message})"
        wazuh_agent_removal_pending(agent=agent, reason=reason)
        ctx.log(
            f"{reason}; agent {agent.name} is left for the sweep after {ctx.attempt} attempts",
            level=LogLevel.WARNING,
        )
    except WazuhError as exc:
        wazuh_agent_removal_pending(agent=agent, reason=exc.message)
        ctx.log(
            f"the manager refused: {exc.message}; agent {agent.name} is left for the sweep",
            level=LogLevel.WARNING,
        )
    return None


def _delete_on_manager(ctx: JobContext, client: WazuhClient, agent: WazuhAgent) -> None:
    found = client.agent_by_name(agent.name)
    if found is None:
        wazuh_agent_removed(agent=agent, detail="it was not on the manager")
        ctx.log(f"agent {agent.name} is not on the manager (never enrolled, or already gone)")
        return
    agent_id = str(found.get("id", ""))
    if not agent_id or agent_id == "000":  # the manager's own: never, whatever its name
        raise WazuhError(f"the manager answered id {agent_id!r} for {agent.name}")
    result = client.delete_agents([agent_id])
    unknown = any(
        item.get("error", {}).get("code") == UNKNOWN_AGENT and agent_id in map(str, item["id"])
        for item in result.failed
    )
    if agent_id in result.affected or unknown:
        wazuh_agent_removed(agent=agent, detail=f"agent {agent_id} deleted from the manager")
        ctx.log(f"deleted agent {agent_id} ({agent.name}) from the manager")
        return
    why = "; ".join(str(item.get("error", {}).get("message", "")) for item in result.failed)
    raise WazuhError(f"the manager did not delete agent {agent_id}: {why or 'no reason given'}")
