// Cluster Portal's own JavaScript: copy buttons, the live hostname check, live job progress,
// a deployment's runtime log.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = document.createElement("textarea");
    area.value = text; document.body.appendChild(area); area.select();
    document.execCommand("copy"); area.remove();
  }
  button.textContent = "Copied";
  button.setAttribute("aria-live", "polite");
  setTimeout(() => { button.textContent = "Copy"; }, 2000);
});

// Live hostname check on the create form.
document.addEventListener("DOMContentLoaded", () => {
  const input = document.querySelector("input[data-check-url]");
  if (input) {
    const out = document.getElementById(input.getAttribute("aria-describedby").split(" ")[0]);
    const check = async () => {
      if (!input.value) { out.textContent = ""; return; }
      const url = input.dataset.checkUrl + "?hostname=" + encodeURIComponent(input.value) +
        "&template=" + encodeURIComponent((document.getElementById("id_template") || {}).value || "");
      const r = await fetch(url, { headers: { "Accept": "application/json" } });
      const body = await r.json();
      out.textContent = body.ok ? `${body.hostname} is available` : body.message;
      out.className = body.ok ? "help" : "error";
    };
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    });
    // A name typed (or restored by the browser) before this script ran is checked too.
    if (input.value) check();
  }

  // Live job progress: Server-Sent Events from the API, resuming where it left off.
  const box = document.querySelector("[data-job-events]");
  if (box) follow(box);

  const runtime = document.querySelector("[data-runtime-log]");
  if (runtime) runtimeLog(runtime);
});

// The server ends a stream after a while (EVENT_STREAM_MAX_SECONDS): EventSource then
// reconnects by itself with Last-Event-ID. A refused connection (429: too many streams
// of yours, 503: the server is busy) closes it for good, so we open a new one later,
// resuming after the last log entry we showed.
function follow(box, after = "", delay = 2000) {
  const log = box.querySelector(".log");
  const status = box.querySelector("[data-job-status]");
  const steps = box.querySelector(".timeline");
  const url = box.dataset.jobEvents;
  const source = new EventSource(after ? `${url}${url.includes("?") ? "&" : "?"}after=${after}` : url);
  let lastId = after;
  source.addEventListener("open", () => { delay = 2000; });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED || box.dataset.jobFinal) return;
    setTimeout(() => follow(box, lastId, Math.min(delay * 2, 30000)), delay);
  });
  source.addEventListener("log", (e) => {
    lastId = e.lastEventId || lastId;
    const entry = JSON.parse(e.data);
    const line = document.createElement("div");
    line.textContent = `${entry.created_at.slice(11, 19)} ${entry.level.padEnd(7)} ${entry.message}`;
    log.appendChild(line);
    log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("job", (e) => {
    const job = JSON.parse(e.data);
    status.textContent = `${job.status} (${job.progress}%)`;
    status.className = `badge job-${job.status}`;
    steps.replaceChildren(...job.steps.map((s) => {
      const li = document.createElement("li");
      const badge = document.createElement("span");
      badge.className = `badge state-${s.state}`;
      badge.textContent = s.state;
      li.append(badge, " ", s.title, durationOf(s));
      return li;
    }));
    if (job.error) {
      let err = box.querySelector(".job-error");
      if (!err) { err = document.createElement("p"); err.className = "job-error error"; err.setAttribute("role", "alert"); box.prepend(err); }
      err.textContent = job.error;
    }
  });
  source.addEventListener("end", (e) => {
    source.close();
    const done = JSON.parse(e.data);
    box.dataset.jobFinal = done.status;
    refreshContainer();
  });
}

function durationOf(step) {
  if (!step.started_at || !step.finished_at) return "";
  const seconds = (Date.parse(step.finished_at) - Date.parse(step.started_at)) / 1000;
  return ` (${seconds.toFixed(1)} s)`;
}

// After a job ends, show the container's new status without reloading the page.
async function refreshContainer() {
  const el = document.querySelector("[data-container-url]");
  if (!el) {  // a page about something else (a deployment): its live sections only
    refreshSections();
    return;
  }
  const r = await fetch(el.dataset.containerUrl, { headers: { "Accept": "application/json" } });
  if (r.status === 404) {  // deleted: its page now says so, with no actions
    location.reload();
    return;
  }
  if (!r.ok) return;
  const c = await r.json();
  document.querySelectorAll("[data-container-status]").forEach((badge) => {
    badge.textContent = c.status;
    badge.className = `badge status-${c.status}`;
  });
  refreshSections();
}

// The parts of the page that depend on the container's state (its actions, say) are
// fetched again and swapped in place, so the buttons match the new status.
async function refreshSections() {
  const live = document.querySelectorAll("[data-live-section][id]");
  if (!live.length) return;
  const r = await fetch(location.href, { headers: { "Accept": "text/html" } });
  if (!r.ok) return;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  live.forEach((el) => {
    // Never yank what the user is typing in, nor a form the server sent back to be
    // corrected (its error and the values typed would go with it).
    if (el.contains(document.activeElement) || el.querySelector('[aria-invalid="true"]')) return;
    const fresh = doc.getElementById(el.id);
    if (fresh) el.replaceWith(fresh); else el.replaceChildren();
  });
}

// A deployment's runtime log (the journal of its app's units), only when asked for: the
// last lines from the API, or followed as Server-Sent Events (`event: line`, one line of
// text in `data`). Each connection starts with the last lines again, so a reconnect
// (the server ends a stream after a while) shows them afresh rather than twice.
const RUNTIME_LINES = 200;
const RUNTIME_KEEP = 2000;  // lines kept on the page while following

function runtimeLog(box) {
  const base = box.dataset.runtimeLog;
  const log = box.querySelector(".log");
  const status = box.querySelector("[data-runtime-status]");
  const followButton = box.querySelector("[data-runtime-follow]");
  let source = null;

  const say = (text, error = false) => {
    status.textContent = text;
    status.className = error ? "error" : "help";
  };
  const line = (text) => {
    const div = document.createElement("div");
    div.textContent = text;
    return div;
  };
  const stop = () => {
    if (source) source.close();
    source = null;
    followButton.setAttribute("aria-pressed", "false");
    followButton.textContent = "Follow";
  };

  box.querySelector("[data-runtime-load]").addEventListener("click", async () => {
    stop();
    say("Reading the log…");
    const r = await fetch(`${base}?lines=${RUNTIME_LINES}`, { headers: { "Accept": "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      say(body.message || `The log could not be read (HTTP ${r.status}).`, true);
      return;
    }
    const lines = body.lines || [];
    log.hidden = false;
    log.replaceChildren(...lines.map(line));
    log.scrollTop = log.scrollHeight;
    say(lines.length ? `The last ${lines.length} line${lines.length === 1 ? "" : "s"}.` : "The log is empty.");
  });

  followButton.addEventListener("click", () => {
    if (source) {
      stop();
      say("Stopped following.");
      return;
    }
    followButton.setAttribute("aria-pressed", "true");
    followButton.textContent = "Stop following";
    say("Connecting…");
    source = new EventSource(`${base}?lines=${RUNTIME_LINES}&follow=1`);
    source.addEventListener("open", () => {
      log.hidden = false;
      log.replaceChildren();
      say("Following: new lines appear as the app writes them.");
    });
    source.addEventListener("line", (e) => {
      log.appendChild(line(e.data));
      while (log.childElementCount > RUNTIME_KEEP) log.firstElementChild.remove();
      log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("end", () => { stop(); say("The log stream ended."); });
    source.addEventListener("error", () => {
      // A refused stream (404, 429, 503) is closed for good; an ended one reconnects.
      if (source && source.readyState === EventSource.CLOSED) {
        stop();
        say("The log could not be followed; try again shortly.", true);
      }
    });
  });
}
