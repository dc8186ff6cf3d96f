"""The `deploy` job (LaunchPad, docs/launchpad.md): a commit into a deployment's
container, over SSH with the portal's deploy key, streamed line by line into the job log.

A deployment's first push makes its container in the same job: the create's steps come
first (`plan`), or the claim's when the push took a warm pool member (docs/pool.md), and
a failure among them is undone as a failed create (or claim) is. After that, a
push updates in place: the commit is unpacked, installed and built in a release of its
own while the previous one keeps serving; only then is /srv/app switched and the app
restarted. A failed health check switches back. The env's values are in no command line
and are masked in every logged line.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings

from containers import deploy_script as script
from containers import deployments
from containers.deploy_logs import env_masker
from containers.deploy_sources import source_discard, source_path
from containers.models import ContainerStatus, Deployment, Job, JobKind, LogLevel, StepState
from containers.remote import Remote, shared
from networking.services import container_route_point, wait_for_apply
from portal.errors import DeployFailed, InvalidState, UpstreamUnavailable

from .context import JobContext
from .create import CreateJob
from .kind import JobKindBase, register

DEPLOY_STEPS = (
    ("ssh", "Wait for SSH"),
    ("source", "Bring the source at the commit"),
    ("services", "Install and start the services"),
    ("install", "Run the install command"),
    ("build", "Run the build command"),
    ("release", "Write its env and units, switch to the new release and start it"),
    ("health", "Check that the app answers"),
    ("publish", "Publish its address"),
)
FLUSH_EVERY = 0.5  # seconds: how fresh the live log is while a command writes
# The health check asks again after 0.05 s, then 0.1, 0.2, 0.4, 0.5, ...: an app is often
# listening a moment after its restart, and a fixed 0.5 s made every deploy wait for it.
HEALTH_FIRST_PAUSE, HEALTH_PAUSE = 0.05, 0.5


@register
class DeployJob(JobKindBase):
    name = JobKind.DEPLOY
    verb = "Deploying"
    steps = DEPLOY_STEPS
    start_from = (ContainerStatus.RUNNING,)
    permission = "delete"  # the owner or staff

    @classmethod
    def plan(
        cls, params: dict[str, Any] | None = None, container: Any = None
    ) -> list[dict[str, Any]]:
        first = CreateJob.plan(params, container) if (params or {}).get("create") else []
        return first + super().plan(params, container)

    def check_retry(self, job: Job, container: Any) -> None:
        raise InvalidState("a deploy is not retried: push again (or run portalctl deploy)")

    def run(self, ctx: JobContext) -> dict[str, Any]:
        p = ctx.job.params
        deployment = Deployment.objects.get(pk=p["deployment"])
        if p.get("create"):
            CreateJob().run(ctx)
        deployments.deployment_started(deployment=deployment, job=ctx.job)
        _Deploy(ctx, deployment).run()
        source_discard(p.get("source", ""))
        deployments.deployment_live(deployment=deployment, commit=p["commit"])
        return {"commit": p["commit"], "release": p["release"], "port": p["app"]["port"]}

    def undo(self, ctx: JobContext) -> str:
        p = ctx.job.params
        source_discard(p.get("source", ""))
        if _creating(ctx):
            return CreateJob().undo(ctx)  # a claim's undo when it took a pool member
        return _undo_release(ctx)

    def failed(self, job: Job, message: str) -> None:
        deployments.deployment_failed(deployment_id=job.params["deployment"], message=message)


def _creating(ctx: JobContext) -> bool:
    """A first push failed before its container was made: a step of the create's part is
    unfinished. Its steps are the job's own that are not the deploy's: a create's, or a
    claim's (configure, disk, ssh_keys, ...) when it took a pool member, Wazuh's included."""
    if not ctx.job.params.get("create"):
        return False
    deploy = dict(DEPLOY_STEPS)
    return any(
        s["state"] not in (StepState.DONE, StepState.SKIPPED)
        for s in ctx.job.steps
        if s["name"] not in deploy
    )


class _Deploy:
    """One run of the deploy steps for a deployment's container."""

    def __init__(self, ctx: JobContext, deployment: Deployment) -> None:
        self.ctx = ctx
        self.c = ctx.container
        self.p = ctx.job.params
        self.app: dict[str, Any] = self.p["app"]
        self.env = _app_env(deployment, self.c.ip, self.app["port"])
        self.mask = env_masker(deployment)
        self.remote = Remote.for_container(self.c.ip, container_id=self.c.pk)
        self._flushed = time.monotonic()

    def run(self) -> None:
        # One SSH connection for every step (the first one's handshake and login only).
        with shared(self.remote) as remote:
            self.remote = remote
            self._steps()

    def _steps(self) -> None:
        ctx, app, release = self.ctx, self.app, self.p["release"]
        ctx.run_step("ssh", self.wait_for_ssh)
        ctx.run_step("source", lambda st: self.sh(script.source_step(release), st))
        services = script.services_step(self.c.template.os_type, app.get("services") or [])
        ctx.run_step("services", lambda st: self.sh(services, st))
        for name, title in (("install", "Install"), ("build", "Build")):
            command = app.get(name) or ""
            step = (
                script.command_step(name, title, command, env=self.env, release=release)
                if command
                else None
            )
            ctx.run_step(name, functools.partial(self.sh, step))
        ctx.run_step("release", self.switch)
        ctx.run_step("health", self.health)
        ctx.run_step("publish", self.publish)

    # -- running a step in the container ---------------------------------------------------
    def sh(self, step: script.Step | None, st: dict[str, Any]) -> str | None:
        if step is None:
            return StepState.SKIPPED
        stdin: Any = step.stdin
        if step.name == "source":
            stdin = source_path(self.p["source"])
        code = self.remote.run(
            step.command,
            stdin=stdin,
            on_line=self.line,
            on_tick=self.tick,
            timeout=settings.DEPLOY_STEP_TIMEOUT,
        )
        if code == 255:
            raise UpstreamUnavailable(f"SSH to {self.c.ip} failed during '{st['title']}'")
        if code != 0:
            raise DeployFailed(f"it exited with status {code}; its output is in the job's log")
        return None

    def line(self, text: str) -> None:
        self.ctx.log(self.mask(text))

    def tick(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_EVERY:
            self._flushed = time.monotonic()
            self.ctx.heartbeat()

    def wait_for_ssh(self, st: dict[str, Any]) -> None:
        self.remote.wait_ready(timeout=settings.DEPLOY_SSH_WAIT_SECONDS, on_tick=self.tick)
        self.ctx.log(f"root@{self.c.ip} answers")

    def switch(self, st: dict[str, Any]) -> None:
        st["switched"] = True  # from here on, a failure goes back to what served before
        self.ctx.save_steps()
        description = f"{self.p['repository']} at {self.p['commit'][:12]} (Cluster Portal)"
        units = script.unit_files(self.app, description=description)
        self.sh(script.switch_step(self.p["release"], units, self.env), st)

    def health(self, st: dict[str, Any]) -> None:
        url = f"http://{self.c.ip}:{self.app['port']}{self.app.get('health') or '/'}"
        deadline = time.monotonic() + settings.DEPLOY_HEALTH_SECONDS
        last, pause = "", HEALTH_FIRST_PAUSE
        while time.monotonic() < deadline:
            status, last = _probe(url)
            self.tick()
            if status and status < 500:
                self.ctx.log(f"{url} answered {status}")
                return
            time.sleep(pause)
            pause = min(pause * 2, HEALTH_PAUSE)
        self.ctx.log("the app's last log lines:", level=LogLevel.WARNING)
        units = script.unit_names(self.app)
        self.remote.run(
            script.logs_command(units, lines=20, follow=False), on_line=self.line, timeout=20
        )
        raise DeployFailed(
            f"the app did not answer on port {self.app['port']} within "
            f"{settings.DEPLOY_HEALTH_SECONDS:.0f} s ({last})"
        )

    def publish(self, st: dict[str, Any]) -> None:
        generation = container_route_point(
            container=self.c, backend_port=self.app["port"], access=self.app["access"]
        )
        if generation is not None and settings.GATEWAY_JOB_WAIT:
            wait_for_apply(self.c.site, generation, on_poll=self.ctx.heartbeat)
        self.ctx.log(f"{self.c.url} -> port {self.app['port']}")
        code = self.remote.run(
            script.prune_step(settings.DEPLOY_RELEASES_KEPT).command, on_line=self.line
        )
        if code != 0:
            self.ctx.log("old releases were not all removed", level=LogLevel.WARNING)


def _app_env(deployment: Deployment, ip: str, port: int) -> dict[str, str]:
    """The declared env, with the portal's own HOST and PORT (which the route relies on)."""
    env: dict[str, str] = json.loads(deployment.env or "{}")
    return {**env, "HOST": ip, "PORT": str(port)}


def _probe(url: str) -> tuple[int | None, str]:
    # No proxy: the container's address is on the cluster's own network.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as response:
            return response.status, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return None, f"{reason}"


def _undo_release(ctx: JobContext) -> str:
    """After a failed deploy step: the previous release serves, whatever failed."""
    if not ctx.step("release").get("switched"):
        serving = (
            Deployment.objects.filter(pk=ctx.job.params["deployment"])
            .values_list("serving_commit", flat=True)
            .first()
        )
        if serving:
            return f"the previous release ({serving[:12]}) still serves"
        return "nothing was started"
    remote = Remote.for_container(ctx.container.ip, container_id=ctx.container.pk)
    said: list[str] = []

    def line(text: str) -> None:
        said.append(text)
        ctx.log(text)

    code = remote.run(script.rollback_step().command, on_line=line, timeout=60)
    if code != 0:
        ctx.log(f"going back exited with status {code}", level=LogLevel.ERROR)
        return "going back to the previous release failed too; see the log"
    back = next(
        (t.split(":", 1)[1].strip() for t in reversed(said) if t.startswith("serving again:")), ""
    )
    if back:
        return f"the previous release ({back.rsplit('/', 1)[-1]}) serves again"
    return "the app is stopped"
