// The container page's charts: Proxmox's RRD for a range (hour ... year) and a
// consolidation (average or maximum), from GET /api/v1/containers/{id}/metrics/, drawn
// with uPlot (installed by `make install` from npm, served as a static file). Loaded only
// on the container page, after uPlot (both deferred, in that order).
"use strict";

(() => {
  const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function bytes(v) {
    if (v == null || Number.isNaN(v)) return "–";
    let i = 0;
    let n = Math.abs(v);
    while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
    const digits = i === 0 || n >= 100 ? 0 : n >= 10 ? 1 : 2;
    return `${(Math.sign(v) * n).toFixed(digits)} ${UNITS[i]}`;
  }
  const rate = (v) => (v == null ? "–" : `${bytes(v)}/s`);
  const percent = (v) => (v == null ? "–" : `${v < 10 ? v.toFixed(2) : v.toFixed(1)} %`);

  // Tick spacings for byte axes: 1, 2, 4 ... 512 of each binary unit, so ticks fall on
  // 256 MiB, 512 MiB, 1 GiB rather than uPlot's decimal 238 MiB, 477 MiB.
  const BYTE_INCRS = UNITS.flatMap((_, k) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * 1024 ** k));

  const BLUE = "#0b5cad", ORANGE = "#c2410c", GREY = "#57606a";

  // Each panel (by the id in the template): how to read a series from one RRD point, and
  // how to show its values. An empty bucket carries only `time`, so a missing field is a
  // gap (null), never a zero.
  const field = (key, scale = 1) => (p) => (p[key] == null ? null : p[key] * scale);
  const PANELS = {
    cpu: { fmt: percent, series: [
      { label: "CPU usage", value: field("cpu", 100), stroke: BLUE, fill: "rgba(11,92,173,.12)" },
    ] },
    memory: { fmt: bytes, series: [
      { label: "Used", value: field("mem"), stroke: BLUE, fill: "rgba(11,92,173,.12)" },
      { label: "Host's view", value: field("memhost"), stroke: ORANGE },
      { label: "Limit", value: field("maxmem"), stroke: GREY, dash: [6, 4] },
    ] },
    disk: { fmt: bytes, series: [
      { label: "Used", value: field("disk"), stroke: BLUE, fill: "rgba(11,92,173,.12)" },
      { label: "Size", value: field("maxdisk"), stroke: GREY, dash: [6, 4] },
    ] },
    net: { fmt: rate, series: [
      { label: "In", value: field("netin"), stroke: BLUE },
      { label: "Out", value: field("netout"), stroke: ORANGE },
    ] },
    diskio: { fmt: rate, series: [
      { label: "Read", value: field("diskread"), stroke: BLUE },
      { label: "Write", value: field("diskwrite"), stroke: ORANGE },
    ] },
    pressure: { fmt: percent, series: [
      { label: "Some", value: field("pressurememorysome"), stroke: ORANGE },
      { label: "Full", value: field("pressurememoryfull"), stroke: "#cf222e" },
    ] },
  };

  const HEIGHT = 220;

  // The last value that is not a gap: what the legend shows while no one points at a
  // time (uPlot passes idx null then), so the legend always says something useful.
  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] != null) return values[i];
    return null;
  }

  function when(t) {
    return new Date(t * 1000).toLocaleString(undefined, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function options(panel, width, latest) {
    return {
      width, height: HEIGHT,
      cursor: { drag: { x: false, y: false } },
      scales: { y: { range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [
        { stroke: GREY, grid: { stroke: "#eaeef2" } },
        { stroke: GREY, grid: { stroke: "#eaeef2" }, size: 80,
          incrs: panel.fmt === percent ? undefined : BYTE_INCRS,
          values: (u, splits) => splits.map(panel.fmt) },
      ],
      series: [
        { label: "Time", value: (u, v, s, idx) => (idx == null ? "latest" : when(v)) },
        ...panel.series.map((s, i) => ({
          label: s.label, stroke: s.stroke, fill: s.fill, dash: s.dash, width: 1.5,
          spanGaps: false, points: { show: false },
          value: (u, v, sidx, idx) => panel.fmt(idx == null ? latest[i] : v),
        })),
      ],
    };
  }

  // Columns for uPlot: times, then one array per series.
  function columns(panel, points) {
    return [points.map((p) => p.time), ...panel.series.map((s) => points.map(s.value))];
  }

  function showLatest(root, l) {
    const set = (name, text) => {
      const el = root.querySelector(`[data-latest-${name}]`);
      if (el) el.textContent = text;
    };
    if (!l || !l.sampled_at) {
      set("cpu", "no sample yet"); set("mem", "–"); set("disk", "–"); set("net", "–"); set("io", "–");
    } else {
      const cores = l.cpus ? ` of ${l.cpus} core${l.cpus === 1 ? "" : "s"}` : "";
      set("cpu", `${percent(l.cpu * 100)}${cores}`);
      set("mem", `${bytes(l.mem)} of ${bytes(l.maxmem)}`);
      set("disk", `${bytes(l.disk)} of ${bytes(l.maxdisk)}`);
      // Rates need two polls: none after the first (or after a restart reset the counters).
      const rates = (a, b, x, y) => (x == null && y == null ? "measured from the next poll" : `${a} ${rate(x)}, ${b} ${rate(y)}`);
      set("net", rates("in", "out", l.netin_rate, l.netout_rate));
      set("io", rates("read", "write", l.diskread_rate, l.diskwrite_rate));
    }
    set("swap", l && l.maxswap != null ? `${bytes(l.swap)} of ${bytes(l.maxswap)}` : "unknown (Proxmox did not answer)");
  }

  function start(root) {
    const form = root.querySelector("[data-chart-form]");
    const status = root.querySelector("[data-chart-status]");
    const figures = [...root.querySelectorAll("[data-chart]")];
    const plots = new Map();  // figure -> uPlot, made on the first answer
    let pending = null;

    function draw(points) {
      for (const fig of figures) {
        const panel = PANELS[fig.dataset.chart];
        const data = columns(panel, points);
        const latest = data.slice(1).map(lastValue);
        // A new range changes the legend's latest values: options are rebuilt, which
        // with a few thousand points is still a few milliseconds.
        plots.get(fig)?.destroy();
        plots.set(fig, new uPlot(options(panel, fig.clientWidth, latest), data, fig));
      }
    }

    async function load() {
      const timeframe = form.elements.timeframe.value, cf = form.elements.cf.value;
      pending?.abort();
      pending = new AbortController();
      root.dataset.chartsState = "loading";
      status.className = "help";
      status.textContent = `Loading the last ${timeframe} (${cf.toLowerCase()})…`;
      try {
        const url = `${root.dataset.charts}?timeframe=${encodeURIComponent(timeframe)}&cf=${encodeURIComponent(cf)}`;
        const r = await fetch(url, { headers: { Accept: "application/json" }, signal: pending.signal });
        const body = await r.json();
        if (!r.ok) throw new Error(body.message || `the server answered ${r.status}`);
        draw(body.points);
        showLatest(root, body.latest);
        const step = body.step >= 3600 ? `${body.step / 3600} h` : body.step >= 60 ? `${body.step / 60} min` : `${body.step} s`;
        status.textContent = `${body.points.length} points, one every ${step}; hover a chart for the values at a time.`;
        Object.assign(root.dataset, { chartsState: "ready", timeframe: body.timeframe, cf: body.cf });
      } catch (e) {
        if (e.name === "AbortError") return;
        status.textContent = `The charts could not be loaded: ${e.message}`;
        status.className = "error";
        root.dataset.chartsState = "error";
      }
    }

    form.addEventListener("change", load);
    form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
    // Follow the page's width (a phone turned, a window resized).
    new ResizeObserver(() => {
      for (const [fig, u] of plots) u.setSize({ width: fig.clientWidth, height: HEIGHT });
    }).observe(root.querySelector(".charts"));
    load();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const root = document.querySelector("[data-charts]");
    if (root && window.uPlot) start(root);
  });
})();
