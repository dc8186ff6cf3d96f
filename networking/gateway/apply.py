"""The apply: render the database, validate a staged copy, swap it in, reload, record.

See the package doc for the sequence. One apply runs at a time on a host (a file lock);
every apply, whatever its outcome, is recorded as a ConfigRevision.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import Case, F, Value, When
from django.db.models.functions import Greatest
from django.utils import timezone

from portal.collector import gc_paused
from portal.errors import ApplyFailed, ErrorCode

from ..models import ConfigRevision, GatewayState, RevisionStatus, Site
from ..render import (
    MANIFEST_FILE,
    REVISION_FILE,
    GatewayOptions,
    Rendered,
    RenderError,
    SiteState,
    UnsafeValue,
    bootstrap_state,
    instance_of,
    load_state,
    render,
)
from .checks import reload_servers, validate_stage
from .paths import GatewayPaths, write_tree
from .servers import Dnsmasq, Nginx

log = logging.getLogger(__name__)

MAX_ROUNDS = 5  # validation rounds that may each leave out blamed entries


@dataclass
class ApplyOutcome:
    revision: ConfigRevision | None
    coalesced: bool = False

    @property
    def ok(self) -> bool:
        return self.revision is None or self.revision.succeeded


@dataclass
class ApplyRun:
    site: Site
    generation: int
    paths: GatewayPaths
    options: GatewayOptions
    force: bool
    started: float = field(default_factory=time.monotonic)
    timings: dict[str, float] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    exclude: set[tuple[str, int]] = field(default_factory=set)
    blamed: dict[tuple[str, int], str] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0.0) + time.monotonic() - t, 4)


def apply_site(
    site: Site | int,
    *,
    force: bool = False,
    paths: GatewayPaths | None = None,
    options: GatewayOptions | None = None,
    coalesce: bool = True,
) -> ApplyOutcome:
    """Make the gateway serve the site's current database state (see the module doc)."""
    site = site if isinstance(site, Site) else Site.objects.get(pk=site)
    paths = paths or GatewayPaths.from_settings()
    options = options or GatewayOptions.from_settings(paths.root)
    with paths.locked():
        paths.ensure(options.acme_dir)
        state, _ = GatewayState.objects.get_or_create(site=site)
        live = paths.live_manifest()
        installed = live is not None and live.get("site") == site.slug
        if not force and installed and state.applied >= state.requested:
            return ApplyOutcome(revision=None, coalesced=True)  # an earlier apply covered it
        generation = _settle(site) if coalesce and not force else _requested(site)
        run = ApplyRun(site=site, generation=generation, paths=paths, options=options, force=force)
        try:
            with gc_paused():
                revision = _apply(run, _Live.of(live, site.slug))
        except ApplyFailed as exc:
            revision = _record(
                run, status=RevisionStatus.FAILED, error_code=exc.code, error=exc.message
            )
            log.warning("gateway apply for %s failed (%s): %s", site.slug, exc.code, exc.message)
        return ApplyOutcome(revision=revision)


def _requested(site: Site) -> int:
    return int(GatewayState.objects.values_list("requested", flat=True).get(site=site))


def _settle(site: Site) -> int:
    """Wait for a quiet moment (no new request for GATEWAY_COALESCE_SECONDS, at most
    GATEWAY_COALESCE_MAX_SECONDS), so that a burst of changes costs one apply."""
    quiet, longest = settings.GATEWAY_COALESCE_SECONDS, settings.GATEWAY_COALESCE_MAX_SECONDS
    generation = _requested(site)
    if quiet <= 0:
        return generation
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        time.sleep(quiet)
        latest = _requested(site)
        if latest == generation:
            break
        generation = latest
    return generation


def _record(
    run: ApplyRun,
    *,
    status: str,
    rendered: Rendered | None = None,
    changed: list[str] | None = None,
    error_code: str = "",
    error: str = "",
    summary: str = "",
) -> ConfigRevision:
    excluded = list(rendered.excluded) if rendered else []
    for item in excluded:
        why = run.blamed.get((item["kind"], item["id"]))
        if why:
            item["reason"] = why
    counts: dict[str, Any] = dict(rendered.counts) if rendered else {}
    if summary:
        counts["summary"] = summary
    revision = ConfigRevision.objects.create(
        site=run.site,
        generation=run.generation,
        status=status,
        content_hash=rendered.content_hash if rendered else "",
        changed=changed or [],
        actions=run.actions,
        counts=counts,
        excluded=excluded,
        timings=run.timings,
        duration_ms=int((time.monotonic() - run.started) * 1000),
        error_code=error_code,
        error=error[:8000],
    )
    if status != RevisionStatus.FAILED:
        now = timezone.now()
        GatewayState.objects.filter(site=run.site).update(
            applied=Greatest(F("applied"), run.generation),
            # Changes after this generation came in while it ran: they wait from now on.
            pending_since=Case(
                When(requested__gt=run.generation, then=Value(now)), default=Value(None)
            ),
            updated_at=now,
        )
    return revision


def _summary(rendered: Rendered, live: dict[str, Any] | None) -> str:
    before_routes = set(live.get("routes", [])) if live else set()
    before_ports = set(live.get("stream_ports", [])) if live else set()
    routes = set(rendered.route_names)
    ports = set(rendered.port_names)
    parts = []
    for label, now, before in (("routes", routes, before_routes), ("ports", ports, before_ports)):
        added, removed = len(now - before), len(before - now)
        if added or removed:
            parts.append(f"{label} +{added} -{removed}")
    return ", ".join(parts) or "no route or port changes"


def _apply(run: ApplyRun, live: _Live) -> ConfigRevision:
    """Render, check, validate, swap and reload, leaving out what a check blames (a round
    each), until the gateway serves the result or MAX_ROUNDS are spent."""
    with run.phase("load"):
        state = load_state(run.site)
    servers = _Servers.of(run)
    for round_ in range(MAX_ROUNDS):
        rendered = _render(run, state)
        changed = sorted(
            p for p, h in rendered.hashes.items() if live.files.get(p) != h and p != MANIFEST_FILE
        )
        unchanged = bool(live.files) and live.content_hash == rendered.content_hash
        if unchanged and not run.force:
            _check_live_servers(run, rendered, *servers)
        if unchanged and not run.force:
            return _record(
                run,
                status=RevisionStatus.UNCHANGED,
                rendered=rendered,
                summary="nothing changed; nothing reloaded",
            )
        stage = _stage(run, rendered, rendered.hashes, round_)
        if _leave_out(run, _validate(run, stage, rendered, changed, live, servers)):
            continue
        bind_blamed, summary = _swap_and_reload(run, stage, rendered, changed, live, servers)
        if _leave_out(run, bind_blamed):
            continue
        return _record(
            run, status=RevisionStatus.APPLIED, rendered=rendered, changed=changed, summary=summary
        )
    raise ApplyFailed(
        code=ErrorCode.VALIDATE,
        message=f"still invalid after leaving out {len(run.exclude)} entries in "
        f"{MAX_ROUNDS} rounds; the live files are unchanged",
    )


class _Servers(NamedTuple):
    nginxes: list[Nginx]  # the HTTP one, then each stream shard
    dnsmasq: Dnsmasq
    use_nginx: bool
    use_dnsmasq: bool

    @classmethod
    def of(cls, run: ApplyRun) -> _Servers:
        return cls(
            Nginx.every(run.paths, run.options),
            Dnsmasq(run.paths, run.options),
            settings.GATEWAY_NGINX_ENABLED,
            settings.GATEWAY_DNSMASQ_ENABLED,
        )


def _validate(
    run: ApplyRun,
    stage: Path,
    rendered: Rendered,
    changed: list[str],
    live: _Live,
    servers: _Servers,
) -> dict[tuple[str, int], str]:
    """What the validators and the bind check blame (the stage goes if anything)."""
    with run.phase("validate"):
        blamed = validate_stage(
            run,
            stage,
            rendered,
            nginxes=[n for n in servers.nginxes if _to_validate(n.name, changed, run)]
            if servers.use_nginx
            else [],
            dnsmasq=servers.use_dnsmasq and _to_validate("dnsmasq", changed, run),
            live_ports=live.ports if servers.use_nginx else None,
        )
    if blamed:
        shutil.rmtree(stage, ignore_errors=True)
    return blamed


def _swap_and_reload(
    run: ApplyRun,
    stage: Path,
    rendered: Rendered,
    changed: list[str],
    live: _Live,
    servers: _Servers,
) -> tuple[dict[tuple[str, int], str], str]:
    """Swap the stage in and reload: (the mappings nginx could not bind, swapped back out
    if any; the change summary)."""
    with run.phase("swap"):
        release, previous = _swap(run.paths, stage)
    with ThreadPoolExecutor(max_workers=1) as meanwhile:
        # While nginx reloads: the old releases go (never the two a rollback needs), and
        # the change summary is worked out.
        pruned = meanwhile.submit(_prune, run, keep_also=(release, previous))
        summary = meanwhile.submit(_summary, rendered, live.manifest if live.files else None)
        try:
            with run.phase("reload"):
                bind_blamed = reload_servers(run, rendered, changed, live.files, *servers)
        except ApplyFailed:
            _roll_back(run.paths, previous, release)
            raise
    pruned.result()
    if bind_blamed:
        _roll_back(run.paths, previous, release)
    return bind_blamed, summary.result()


@dataclass(frozen=True)
class _Live:
    """The live release's manifest; its files and ports only if it is this site's."""

    manifest: dict[str, Any] | None
    files: dict[str, str]
    ports: set[str]

    @classmethod
    def of(cls, live: dict[str, Any] | None, slug: str) -> _Live:
        files: dict[str, str] = (
            (live or {}).get("files", {}) if (live or {}).get("site") == slug else {}
        )
        ports = set((live or {}).get("stream_ports", [])) if files else set()
        return cls(manifest=live, files=files, ports=ports)

    @property
    def content_hash(self) -> Any:
        return self.manifest.get("content_hash") if self.manifest else None


def _render(run: ApplyRun, state: SiteState) -> Rendered:
    try:
        with run.phase("render"):
            return render(state, run.options, exclude=run.exclude)
    except (RenderError, UnsafeValue) as exc:
        raise ApplyFailed(
            code=ErrorCode.RENDER, message=f"the configuration cannot be rendered: {exc}"
        ) from exc


def _check_live_servers(
    run: ApplyRun,
    rendered: Rendered,
    nginxes: list[Nginx],
    dnsmasq: Dnsmasq,
    use_nginx: bool,
    use_dnsmasq: bool,
) -> None:
    """Nothing changed: every server must run, and each nginx must serve these files."""
    for nginx in nginxes if use_nginx else []:
        nginx.require_running()
    if use_dnsmasq:
        dnsmasq.require_running()
    for nginx in nginxes if use_nginx else []:
        if nginx.served() != rendered.revisions[nginx.name]:
            # The files are live but it serves something else (an apply died between
            # the swap and the reload): reload them, as a forced apply would.
            run.force = True
            run.actions.append(f"{nginx.label} served an older revision than the live files")


def _to_validate(server: str, changed: list[str], run: ApplyRun) -> bool:
    """Whether a server's files need its validator: a forced apply validates everything;
    otherwise only a server ("nginx", "stream-<i>", "dnsmasq") with a changed file, not
    counting nginx's revision file (one `return 200 <revision>;` line, different whenever
    another of its files is). Files byte-identical to the live release were validated
    before it was swapped in."""
    return run.force or any(instance_of(p) == server and p != REVISION_FILE for p in changed)


def _leave_out(run: ApplyRun, blamed: dict[tuple[str, int], str]) -> bool:
    """Leave the blamed entries out of the next round; whether there were any."""
    run.blamed.update(blamed)
    run.exclude.update(blamed)
    return bool(blamed)


def _stage(run: ApplyRun, rendered: Rendered, hashes: dict[str, str], round_: int) -> Path:
    """The rendered files and their manifest in a fresh staging directory."""
    with run.phase("write"):
        return _write_stage(run, rendered, hashes, round_)


def _write_stage(run: ApplyRun, rendered: Rendered, hashes: dict[str, str], round_: int) -> Path:
    stage = run.paths.staging / f"{run.generation:06d}-{rendered.content_hash[:12]}-{round_}"
    shutil.rmtree(stage, ignore_errors=True)
    manifest = {
        "site": run.site.slug,
        "generation": run.generation,
        "content_hash": rendered.content_hash,
        "files": hashes,
        "stream_ports": sorted(rendered.port_names),
        "routes": rendered.route_names,
        "created_at": timezone.now().isoformat(),
    }
    write_tree({**rendered.files, MANIFEST_FILE: json.dumps(manifest)}, stage)
    return stage


def _swap(paths: GatewayPaths, stage: Path) -> tuple[Path, Path | None]:
    """Make the validated stage the live release; (the release, the one it replaced)."""
    previous = paths.live_release()
    release = paths.releases / stage.name
    shutil.rmtree(release, ignore_errors=True)
    os.rename(stage, release)
    paths.point_current(release)
    return release, previous


def _roll_back(paths: GatewayPaths, previous: Path | None, failed: Path) -> None:
    if previous is not None and previous.is_dir():
        paths.point_current(previous)
    shutil.rmtree(failed, ignore_errors=True)


def _prune(run: ApplyRun, *, keep_also: tuple[Path | None, ...]) -> None:
    """The releases beyond GATEWAY_KEEP_RELEASES (newest first) and the staging leftovers;
    never the live one, nor those in `keep_also`."""
    with run.phase("prune"):
        paths = run.paths
        keep = max(1, int(settings.GATEWAY_KEEP_RELEASES))
        spare = {paths.live_release(), *keep_also}
        releases = sorted(
            (p for p in paths.releases.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        for old in releases[:-keep]:
            if old not in spare:
                shutil.rmtree(old, ignore_errors=True)
        for leftover in paths.staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)


# -- bootstrap, rendering to a directory ----------------------------------------------------
def install_bootstrap(paths: GatewayPaths, options: GatewayOptions, *, fresh: bool = False) -> None:
    """A minimal valid configuration (no site yet), so the servers can start.

    `fresh` installs it even over a live release: for servers about to start with the
    current options, never with what an earlier run rendered (other ports, say).
    """
    with paths.locked():
        paths.ensure(options.acme_dir)
        if paths.live_release() is not None and not fresh:
            return
        rendered = render(bootstrap_state(), options)
        release = paths.releases / "000000-bootstrap"
        shutil.rmtree(release, ignore_errors=True)
        manifest = {
            "site": "",
            "generation": 0,
            "content_hash": rendered.content_hash,
            "files": rendered.hashes,
            "stream_ports": [],
            "routes": [],
        }
        write_tree({**rendered.files, MANIFEST_FILE: json.dumps(manifest)}, release)
        paths.point_current(release)


def render_to_directory(
    site: Site, out: Path, *, options: GatewayOptions | None = None
) -> Rendered:
    """A complete, self-contained configuration in `out` (its paths point into `out`)."""
    options = options or GatewayOptions.from_settings()
    options = GatewayOptions(**{**options.__dict__, "root": out.resolve(), "acme_dir": ""})
    rendered = render(load_state(site), options)
    write_tree(rendered.files, out)
    for d in (out / "run" / "logs", out / "run" / "tmp", out / "acme"):
        d.mkdir(parents=True, exist_ok=True)
    return rendered
