"""The gateway bench's first part: apply time by size, against `nginx -t` alone.

At each size: the apply that grows the site to it from the previous size (thousands of
new routes and ports at once), then BENCH_GATEWAY_STEADY applies that each add one
container, as a create does (the figure that matters day to day: the median), each
after an `nginx -t` alone on the live files: the ratio is the median of each apply over
the `nginx -t` just before it, as the load of a shared machine drifts. The apply's own
phase timings split each figure: what nginx costs (`nginx -t`, the reload until only
new workers accept) and what the portal adds around it (read, render, write, record).

BENCH_GATEWAY_BASELINE=<git revision> also runs this part on that revision (exported,
measured by this same code, in a process of its own) and prints both side by side;
BENCH_GATEWAY_ROUNDS (2) alternates the two that many times. BENCH_GATEWAY_PROFILE=1
profiles one more apply at the largest size with cProfile.
"""

from __future__ import annotations

import cProfile
import io
import ipaddress
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = [int(n) for n in os.environ.get("BENCH_GATEWAY_SIZES", "100,1000,10000").split(",")]
STEADY = int(os.environ.get("BENCH_GATEWAY_STEADY", "5"))
ROUNDS = int(os.environ.get("BENCH_GATEWAY_ROUNDS", "2"))
# The apply's phases shown (bind_check, nginx -t and dnsmasq --test run side by side).
SHOWN = [
    "load",
    "render",
    "write",
    "bind_check",
    "nginx -t",
    "nginx validation",
    "dnsmasq --test",
    "swap",
    "reload",
    "prune",
]


def grow(site: Any, owner: Any, net: str, start: int, stop: int) -> None:
    """Containers start..stop-1, each with its default route and SSH mapping (bulk inserts)."""
    from containers.models import Container
    from networking.models import PortMapping, Route

    template, node = site.templates.get(), site.nodes.first()
    first = int(ipaddress.IPv4Address(f"{net}.1.0"))
    rows = []
    for i in range(start, stop):
        ip = ipaddress.IPv4Address(first + i)
        rows.append(
            Container(
                site=site,
                node=node,
                vmid=1000 + i,
                hostname=f"ct{i}",
                owner=owner,
                template=template,
                cores=1,
                memory_mib=512,
                swap_mib=0,
                disk_gib=4,
                ip=str(ip),
                mac="02:01:" + ":".join(f"{b:02X}" for b in ip.packed),
            )
        )
    Container.objects.bulk_create(rows, batch_size=2000)
    ids = dict(
        Container.objects.filter(site=site, vmid__gte=1000 + start).values_list("hostname", "id")
    )
    Route.objects.bulk_create(
        [
            # Public: wrk measures routing, not the login check.
            Route(
                site=site,
                container_id=ids[f"ct{i}"],
                subdomain=f"ct{i}",
                backend_port=8080,
                access="public",
            )
            for i in range(start, stop)
        ],
        batch_size=2000,
    )
    PortMapping.objects.bulk_create(
        [
            PortMapping(
                site=site,
                container_id=ids[f"ct{i}"],
                name="ssh",
                protocol="tcp",
                external_port=site.ssh_port_min + i,
                container_port=22,
            )
            for i in range(start, stop)
        ],
        batch_size=2000,
    )


def nginx_t_alone(paths: Any, runs: int = 5) -> float:
    """`nginx -t` of every live nginx file, one after the other: the HTTP nginx's and, where
    the gateway has them, each stream shard's (the whole gateway's configuration)."""
    from networking.gateway import nginx_test

    confs = [paths.nginx_conf, *sorted(paths.nginx_prefix.glob("stream-*.conf"))]
    took = []
    for _ in range(runs):
        t = time.monotonic()
        for conf in confs:
            ok, out = nginx_test(conf, paths.nginx_prefix)
            assert ok, out
        took.append(time.monotonic() - t)
    return statistics.median(took)


def _shards(paths: Any) -> tuple[str, str]:
    """The live stream shards' files, one after the other (empty before the shards), and
    their `load_module` line."""
    text = "".join(f.read_text() for f in sorted(paths.nginx_prefix.glob("stream-*.conf")))
    module = re.search(r"^load_module [^;]+;\n", text, re.M)
    return text, module[0] if module else ""


_MAPPING_LINE = re.compile(r"^ +(?:listen \S+|[A-Z]+:\d+ \S+); # mapping \d+$", re.M)


def one_nginx_t(paths: Any, runs: int = 5) -> float | None:
    """`nginx -t` of the same routes and mappings in one nginx, as the gateway had them
    before the stream shards (the issue's "nginx -t alone"); None without shards."""
    from networking.gateway import nginx_test

    text, module = _shards(paths)
    if not text:
        return None
    lines = [m[0].strip() for m in _MAPPING_LINE.finditer(text)]
    entries = "\n".join(ln for ln in lines if not ln.startswith("listen "))
    listens = "\n".join(ln for ln in lines if ln.startswith("listen "))
    one = paths.nginx_prefix / "one-nginx.conf"
    # Sized as the renderer sized the one nginx: a connection slot for every listen.
    http = re.sub(
        r"worker_connections \d+;",
        f"worker_connections {len(lines) // 2 + 8195};",
        paths.nginx_conf.read_text(),
    )
    http = re.sub(
        r"worker_rlimit_nofile \d+;", f"worker_rlimit_nofile {len(lines) * 2 + 20000};", http
    )
    one.write_text(
        module
        + http
        + "stream {\n map_hash_max_size 32768;\n map_hash_bucket_size 128;\n"
        + f' map "$protocol:$server_port" $b {{\n default "";\n{entries}\n }}\n'
        + f" server {{\n{listens}\n proxy_pass $b;\n }}\n}}\n"
    )
    took = []
    try:
        for _ in range(runs):
            t = time.monotonic()
            ok, out = nginx_test(one, paths.nginx_prefix)
            took.append(time.monotonic() - t)
            assert ok, out
    finally:
        one.unlink()
    return statistics.median(took)


def _apply_once(site: Any) -> dict[str, Any]:
    from networking.gateway import apply_site
    from networking.services import request_apply

    request_apply(site)
    began = time.monotonic()
    rev = apply_site(site, coalesce=False).revision
    took = time.monotonic() - began  # all of it: the lock, the live manifest, the record
    if rev is None or rev.status != "applied":
        raise RuntimeError(f"the apply failed: {rev and rev.error}")
    return {"total": took, "timings": dict(rev.timings)}


def median_apply(applies: list[dict[str, Any]]) -> dict[str, Any]:
    """The apply whose total is the median (its phases add up, unlike medians of each)."""
    return sorted(applies, key=lambda a: a["total"])[(len(applies) - 1) // 2]


def ratio(applies: list[dict[str, Any]]) -> float:
    """The median of each apply over the `nginx -t` alone taken just before it."""
    return statistics.median(a["total"] / a["nginx_t"] for a in applies)


def nginx_ratio(applies: list[dict[str, Any]]) -> float:
    """The same for nginx's part alone: the floor of `ratio` whatever the portal does."""
    return statistics.median(nginx_share(a) / a["nginx_t"] for a in applies)


def nginx_share(apply: dict[str, Any]) -> float:
    """What nginx itself took: validation (the longest `nginx -t` of those run side by side;
    before the shards, the one) and the reload until only new workers accept."""
    t = apply["timings"]
    return float(t.get("nginx validation", t.get("nginx -t", 0.0)) + t.get("reload", 0.0))


def scale(site: Any, owner: Any, gw: Any, net: str) -> dict[str, Any]:
    """Every size's applies and `nginx -t` alone; prints a table as it goes."""
    print(
        "Apply by size (each container: an HTTP route and an SSH mapping); seconds.\n"
        f"'+1': the median of {STEADY} applies that each add one container (what a create "
        "causes); 'growth': the apply from the previous size"
    )
    print(
        f"{'containers':>10} {'+1 apply':>9} {'nginx -t alone':>15} {'ratio':>6} "
        + " ".join(f"{c:>{max(7, len(c))}}" for c in SHOWN)
        + f" {'portal part':>12} {'growth apply':>13} {'ratio':>6}"
    )
    results: dict[str, Any] = {}
    have = 0
    for n in sorted(SIZES):
        grow(site, owner, net, have, n)
        have = n
        growth = _apply_once(site)
        steady = []
        for _ in range(STEADY):
            grow(site, owner, net, have, have + 1)
            have += 1
            # nginx -t alone just before each apply: the machine's load drifts, and the
            # ratio of the two taken together does not.
            alone_now = nginx_t_alone(gw.paths(), runs=1)
            steady.append({**_apply_once(site), "nginx_t": alone_now})
        alone = nginx_t_alone(gw.paths())
        one = one_nginx_t(gw.paths())
        results[str(n)] = {"growth": growth, "steady": steady, "nginx_t": alone, "one_nginx_t": one}
        mid = median_apply(steady)
        print(
            f"{n:>10} {mid['total']:>9.3f} {alone:>15.3f} {ratio(steady):>6.2f} "
            + " ".join(f"{mid['timings'].get(c, 0.0):>{max(7, len(c))}.3f}" for c in SHOWN)
            + f" {mid['total'] - nginx_share(mid):>12.3f}"
            + f" {growth['total']:>13.3f} {growth['total'] / alone:>6.2f}"
        )
        if one is not None:
            print(
                f"{'':>10} the same routes and mappings in one nginx (the layout before the "
                f"stream shards): nginx -t {one:.3f} s; the +1 apply over it "
                f"{mid['total'] / one:.2f}"
            )
    if os.environ.get("BENCH_GATEWAY_PROFILE"):
        grow(site, owner, net, have, have + 1)
        _profile(site)
    return results


def _profile(site: Any) -> None:
    profile = cProfile.Profile()
    profile.enable()
    _apply_once(site)
    profile.disable()
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(30)
        print(f"\ncProfile of one +1 apply, by {order}:\n{out.getvalue()}")


def per_server_block_layout(gw: Any) -> float:
    """`nginx -t` of the live mappings in one stream nginx with one server block per
    mapping, instead of one server with a listen each and a map."""
    from networking.gateway import nginx_test

    paths = gw.paths()
    text, module = _shards(paths)
    backends = re.findall(r"^\s+TCP:(\d+) (\S+); # mapping", text, re.M)
    bind = gw.settings["GATEWAY_STREAM_BIND"]
    alt = paths.nginx_prefix / "alt-layout.conf"
    alt.write_text(
        module
        + f"worker_rlimit_nofile {4 * len(backends) + 1024};\n"
        + f"events {{ worker_connections {len(backends) + 1024}; }}\nstream {{\n"
        + "".join(
            f"server {{ listen {bind}:{port}; proxy_pass {backend}; }}\n"
            for port, backend in backends
        )
        + "}\n"
    )
    t = time.monotonic()
    ok, out = nginx_test(alt, paths.nginx_prefix)
    took = time.monotonic() - t
    alt.unlink()
    assert ok, out
    return took


# -- before and after ---------------------------------------------------------------------------
def compare_with(baseline: str) -> None:
    """This part on `baseline` and on this tree, alternately, then both side by side."""
    from bench._revision import REPO, describe, export_revision

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-baseline-"))
    try:
        trees = {"before": export_revision(baseline, work / "before"), "after": REPO}
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for round_ in range(ROUNDS):
            for label, tree in trees.items():
                print(f"\n--- round {round_ + 1}, {label} ({tree})", flush=True)
                out = work / f"{label}-{round_}.json"
                env = {
                    **os.environ,
                    "BENCH_GATEWAY_PARTS": "scale",
                    "BENCH_GATEWAY_JSON": str(out),
                    "BENCH_GATEWAY_BASELINE": "",
                }
                subprocess.run(
                    [sys.executable, "-m", "bench.gateway"], cwd=tree, env=env, check=True
                )
                runs[label].append(json.loads(out.read_text()))
        _print_comparison(describe(baseline), runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pooled(rounds: list[dict[str, Any]], size: str) -> dict[str, Any]:
    steady = [a for r in rounds for a in r[size]["steady"]]
    growth = [(r[size]["growth"]["total"], r[size]["nginx_t"]) for r in rounds]
    return {
        "mid": median_apply(steady),
        "alone": statistics.median(a["nginx_t"] for a in steady),
        "ratio": ratio(steady),
        "nginx_ratio": nginx_ratio(steady),
        "growth": statistics.median(g for g, _ in growth),
        "growth_ratio": statistics.median(g / t for g, t in growth),
        # The same in one nginx (the layout before the stream shards), when there are shards.
        "one": statistics.median(r[size].get("one_nginx_t") or r[size]["nginx_t"] for r in rounds),
    }


def _print_comparison(baseline: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    print(
        f"\nBefore ({baseline}) and after (this tree), {ROUNDS} alternating round(s); "
        f"+1 = median of {ROUNDS * STEADY} applies, ratio = median of each over the "
        "nginx -t alone (every nginx of the gateway, one after the other) taken just before "
        "it; 'over one nginx -t': the median +1 over nginx -t of the same files in one nginx "
        "(the layout before the stream shards; before: its own nginx -t); seconds"
    )
    print(
        f"{'containers':>10} {'':>7} {'+1 apply':>9} {'nginx -t alone':>15} {'ratio':>6} "
        f"{'nginx part':>11} {'its ratio':>10} {'portal part':>12} {'growth apply':>13} "
        f"{'ratio':>6} {'over one nginx -t':>18}"
    )
    for size in sorted(runs["after"][0], key=int):
        for label in ("before", "after"):
            p = _pooled(runs[label], size)
            mid = p["mid"]
            print(
                f"{int(size):>10} {label:>7} {mid['total']:>9.3f} {p['alone']:>15.3f} "
                f"{p['ratio']:>6.2f} {nginx_share(mid):>11.3f} {p['nginx_ratio']:>10.2f} "
                f"{mid['total'] - nginx_share(mid):>12.3f} {p['growth']:>13.3f} "
                f"{p['growth_ratio']:>6.2f} {mid['total'] / p['one']:>18.2f}"
            )
