// The strata status page: polls api/status (the JSON of `strata status -o json`) and draws
// it with DOM calls only. Names in the status (tables, nodes, labels) are user input: they
// reach the page as text nodes, never as markup.
"use strict";

const POLL_MS = 2000;
// A checkpoint older than this is flagged, as is a cluster with none.
const OLD_CHECKPOINT_MS = 60 * 60 * 1000;
// A copying move whose counters did not change for this long is flagged as stuck.
const STUCK_MOVE_MS = 30 * 1000;
// Per-node identity fields shown on a node's card when the status carries them.
const IDENTITY_FIELDS = ["version", "commit", "config_hash", "started_at", "gpu"];
// Okabe–Ito colours (told apart with colour-blindness), then a few more; text colour each.
const PALETTE = [
  ["#0072b2", "#fff"], ["#e69f00", "#000"], ["#009e73", "#fff"], ["#cc79a7", "#000"],
  ["#56b4e9", "#000"], ["#f0e442", "#000"], ["#6a3d9a", "#fff"], ["#b15928", "#fff"],
  ["#8dd3c7", "#000"], ["#404040", "#fff"], ["#fdbf6f", "#000"], ["#1f78b4", "#fff"],
];
const ACTIVE_MOVE_STATES = new Set(["copying", "handoff"]);

// Progress seen per move id: {key, since}; `key` changes whenever the move advances.
const moveProgress = new Map();
let lastSuccess = 0;

// An element with attributes (class, data-*, aria-*, title, ...) and children; strings
// become text nodes.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replaces the children of `parent` with `children`, skipping absent ones.
function fill(parent, ...children) {
  parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined && c !== false));
}

function bytes(n) {
  const units = [["TiB", 2 ** 40], ["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]];
  for (const [unit, scale] of units) {
    if (n >= scale) return (n / scale).toFixed(1) + " " + unit;
  }
  return n + " B";
}

function count(n) {
  return Number(n || 0).toLocaleString("en-US", { maximumFractionDigits: 0 });
}

// A rate per second: one decimal under 10, whole numbers above.
function rate(n) {
  const v = Number(n || 0);
  return v > 0 && v < 10 ? v.toFixed(1) : count(v);
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  if (ms < 1000) return Math.round(ms) + "ms";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 86400) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function percent(fraction) {
  return (100 * fraction).toFixed(1) + "%";
}

// A node's state for people: up, down, draining, down+draining.
function nodeState(node) {
  const down = node.state !== "up";
  if (node.draining) return down ? "down" : "draining";
  return down ? "down" : "up";
}

function stateBadge(node) {
  const state = nodeState(node);
  const text = {
    up: "\u2714 UP",
    down: "\u2716 DOWN",
    draining: "\u2198 DRAINING",
  }[state];
  const label = node.state !== "up" && node.state !== "down" ? " (" + node.state + ")" : "";
  return el("span", { class: "badge badge-" + state }, text + label);
}

function colourOf(nodeIds) {
  const colours = new Map();
  nodeIds.forEach((id, i) => colours.set(id, PALETTE[i % PALETTE.length]));
  return colours;
}

function label(node, key) {
  return (node.labels && node.labels[key]) || "";
}

function checkpointOld(ageMs) {
  return ageMs === null || ageMs === undefined || ageMs > OLD_CHECKPOINT_MS;
}

// Tracks each move's counters; returns the ids of active moves that did not advance for
// STUCK_MOVE_MS, with how long.
function stuckMoves(migrations, now) {
  const stuck = new Map();
  const seen = new Set();
  for (const m of migrations) {
    seen.add(m.id);
    const key = [m.state, m.rows_copied, m.bytes_copied].join("/");
    const prev = moveProgress.get(m.id);
    if (!prev || prev.key !== key) {
      moveProgress.set(m.id, { key, since: now });
    } else if (ACTIVE_MOVE_STATES.has(m.state) && now - prev.since > STUCK_MOVE_MS) {
      stuck.set(m.id, now - prev.since);
    }
  }
  for (const id of moveProgress.keys()) {
    if (!seen.has(id)) moveProgress.delete(id);
  }
  return stuck;
}

function problemsOf(s, stuck) {
  const problems = [];
  for (const n of s.nodes) {
    const state = nodeState(n);
    if (state === "down") {
      problems.push(["bad", "Node " + n.id + " is DOWN: no heartbeat for "
        + duration(n.last_heartbeat_ms_ago) + " (" + n.shards + " shards)"]);
    } else if (state === "draining") {
      problems.push(["warn", "Node " + n.id + " is draining (" + n.shards + " shards left)"]);
    }
  }
  for (const [id, ms] of stuck) {
    problems.push(["bad", "Move " + id + " is STUCK: no progress for " + duration(ms)]);
  }
  for (const m of s.migrations) {
    if (m.error) problems.push(["bad", "Move " + m.id + " failed: " + m.error]);
  }
  if (s.plan && s.plan.state === "failed") {
    problems.push(["bad", "Plan " + s.plan.id + " failed" + (s.plan.error ? ": " + s.plan.error : "")]);
  }
  // Nodes that hold shards and have no checkpoint, or only an old one.
  const holders = s.nodes.filter((n) => n.shards > 0);
  const never = holders.filter((n) => n.checkpoint_age_ms === null || n.checkpoint_age_ms === undefined);
  const old = holders.filter((n) => n.checkpoint_age_ms > OLD_CHECKPOINT_MS);
  if (!s.last_checkpoint) {
    problems.push(["warn", "No cluster checkpoint yet"]);
  } else if (never.length) {
    problems.push(["warn", "No checkpoint on " + never.map((n) => n.id).join(", ")]);
  }
  if (old.length) {
    const oldest = Math.max(...old.map((n) => n.checkpoint_age_ms));
    problems.push(["warn", "Checkpoint is OLD on " + old.map((n) => n.id).join(", ")
      + ": the oldest is " + duration(oldest) + " old"]);
  }
  const versions = new Set(s.nodes.map((n) => n.version).filter((v) => v));
  if (versions.size > 1) {
    problems.push(["warn", "Nodes run " + versions.size + " versions: " + [...versions].join(", ")]);
  }
  return problems;
}

function renderSummary(s) {
  const up = s.nodes.filter((n) => n.state === "up").length;
  const rows = s.tables.reduce((sum, t) => sum + t.rows, 0);
  const pull = s.nodes.reduce((sum, n) => sum + n.pull_rows_per_s, 0);
  const push = s.nodes.reduce((sum, n) => sum + n.push_rows_per_s, 0);
  document.getElementById("summary").replaceChildren(
    el("span", {}, "epoch ", el("strong", {}, String(s.epoch))),
    el("span", {}, "leader ", el("strong", {}, s.leader)),
    el("span", {}, "nodes up ", el("strong", { class: up < s.nodes.length ? "bad-text" : "" },
      up + " / " + s.nodes.length)),
    el("span", {}, "rows ", el("strong", {}, count(rows))),
    el("span", {}, "pull ", el("strong", {}, rate(pull) + " rows/s")),
    el("span", {}, "push ", el("strong", {}, rate(push) + " rows/s")),
  );
}

function renderProblems(problems) {
  const list = document.getElementById("problems");
  if (problems.length === 0) {
    list.replaceChildren(el("li", { class: "problem ok" }, "\u2714 All nodes up, no stuck moves, checkpoints fresh"));
    return;
  }
  list.replaceChildren(...problems.map(([level, text]) =>
    el("li", { class: "problem " + level }, (level === "bad" ? "\u2716 " : "\u26a0 ") + text)));
}

function nodeCard(n, colours) {
  const state = nodeState(n);
  const [bg, fg] = colours.get(n.id) || ["#888", "#000"];
  const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
  swatch.style.backgroundColor = bg;
  swatch.style.color = fg;
  const identity = IDENTITY_FIELDS.filter((k) => n[k] !== undefined && n[k] !== null && n[k] !== "")
    .map((k) => el("span", { class: "identity" }, k.replace("_", " ") + " ",
      el("strong", {}, typeof n[k] === "object" ? JSON.stringify(n[k]) : String(n[k]))));
  const budget = n.memory_budget === null ? "unlimited" : bytes(n.memory_budget);
  const ckpt = n.checkpoint_age_ms === null
    ? el("span", { class: "flag" }, "none")
    : el("span", { class: checkpointOld(n.checkpoint_age_ms) ? "flag" : "" },
      duration(n.checkpoint_age_ms) + " ago" + (checkpointOld(n.checkpoint_age_ms) ? " (OLD)" : ""));
  const heartbeat = state === "down"
    ? el("span", { class: "flag" }, duration(n.last_heartbeat_ms_ago) + " ago")
    : duration(n.last_heartbeat_ms_ago) + " ago";
  const otherLabels = Object.entries(n.labels || {})
    .filter(([k]) => k !== "zone" && k !== "rack")
    .map(([k, v]) => k + "=" + v).join(", ");
  return el("article", { class: "node node-" + state, "data-node": n.id, "data-state": state },
    el("h4", {}, swatch, n.id, " ", stateBadge(n)),
    el("p", { class: "address" }, n.address, otherLabels ? " \u00b7 " + otherLabels : ""),
    identity.length ? el("p", { class: "identities" }, identity) : null,
    el("dl", {},
      el("dt", {}, "shards"), el("dd", {}, String(n.shards)),
      el("dt", {}, "rows"), el("dd", {}, count(n.rows)),
      el("dt", {}, "memory"), el("dd", {}, bytes(n.memory_used) + " / " + budget),
      el("dt", {}, "pull / push"), el("dd", {}, rate(n.pull_rows_per_s) + " / "
        + rate(n.push_rows_per_s) + " rows/s"),
      el("dt", {}, "heartbeat"), el("dd", {}, heartbeat),
      el("dt", {}, "checkpoint"), el("dd", {}, ckpt),
    ));
}

function renderNodes(s, colours) {
  const byZone = new Map();
  for (const n of s.nodes) {
    const zone = label(n, "zone");
    const rack = label(n, "rack");
    if (!byZone.has(zone)) byZone.set(zone, new Map());
    const racks = byZone.get(zone);
    if (!racks.has(rack)) racks.set(rack, []);
    racks.get(rack).push(n);
  }
  const zones = [...byZone.keys()].sort();
  const parts = zones.map((zone) => {
    const racks = byZone.get(zone);
    return el("section", { class: "zone" },
      el("h3", {}, zone ? "zone " + zone : "no zone label"),
      el("div", { class: "racks" }, [...racks.keys()].sort().map((rack) => el("div", { class: "rack" },
        el("h4", { class: "rack-title" }, rack ? "rack " + rack : "no rack label"),
        el("div", { class: "node-list" },
          racks.get(rack).sort((a, b) => a.id.localeCompare(b.id)).map((n) => nodeCard(n, colours)))))));
  });
  document.getElementById("nodes").replaceChildren(
    ...(parts.length ? parts : [el("p", { class: "empty" }, "No shard servers have registered.")]));
}

function renderShards(s, colours) {
  const down = new Set(s.nodes.filter((n) => nodeState(n) === "down").map((n) => n.id));
  const perNode = new Map();
  for (const sh of s.shards) perNode.set(sh.primary, (perNode.get(sh.primary) || 0) + 1);
  const legend = [...colours.keys()].map((id) => {
    const [bg] = colours.get(id);
    const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
    swatch.style.backgroundColor = bg;
    return el("li", { class: down.has(id) ? "legend-down" : "" }, swatch, id,
      " (" + (perNode.get(id) || 0) + ")", down.has(id) ? " \u2716 down" : "");
  });
  document.getElementById("legend").replaceChildren(...legend);
  const cells = s.shards.map((sh) => {
    const [bg, fg] = colours.get(sh.primary) || ["#bbb", "#000"];
    const lost = down.has(sh.primary);
    const cell = el("div", {
      class: "shard" + (lost ? " shard-down" : ""),
      "data-shard": sh.id,
      "data-primary": sh.primary,
      title: "shard " + sh.id + ", slots [" + sh.slots[0] + ", " + sh.slots[1] + "), primary "
        + sh.primary + (lost ? " (DOWN)" : "") + ", " + count(sh.rows) + " rows, " + bytes(sh.bytes),
      role: "img",
      "aria-label": "shard " + sh.id + " on " + sh.primary + (lost ? ", down" : ""),
    }, lost ? "\u2716" + sh.id : String(sh.id));
    cell.style.backgroundColor = bg;
    cell.style.color = fg;
    return cell;
  });
  document.getElementById("shards").replaceChildren(
    ...(cells.length ? cells : [el("p", { class: "empty" }, "No shards.")]));
}

function renderTables(s) {
  const root = document.getElementById("tables");
  if (s.tables.length === 0 && s.dense.length === 0) {
    root.replaceChildren(el("p", { class: "empty" }, "No tables."));
    return;
  }
  const rows = s.tables.map((t) => {
    const tiers = t.tiers.length
      ? t.tiers.map((u) => el("div", {}, u.tier + ": " + count(u.rows) + " rows, " + bytes(u.bytes)))
      : "—";
    const cache = t.cache
      ? percent(t.cache.hit_rate) + " (" + count(t.cache.evictions) + " evictions)"
      : "—";
    return el("tr", { "data-table": t.name },
      el("th", { scope: "row" }, t.name), el("td", { class: "num" }, String(t.dim)),
      el("td", { class: "num" }, count(t.rows)), el("td", { class: "num" }, bytes(t.bytes)),
      el("td", {}, tiers), el("td", { class: "num" }, cache));
  });
  const parts = [];
  if (s.tables.length) {
    parts.push(el("table", {},
      el("thead", {}, el("tr", {}, ["table", "dim", "rows", "size", "per tier", "GPU hit rate"]
        .map((h, i) => el("th", { scope: "col", class: [1, 2, 3, 5].includes(i) ? "num" : "" }, h)))),
      el("tbody", {}, rows)));
  }
  if (s.dense.length) {
    parts.push(el("table", {},
      el("thead", {}, el("tr", {}, ["dense tensor", "shape", "optimizer"]
        .map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, s.dense.map((d) => el("tr", {},
        el("th", { scope: "row" }, d.name), el("td", {}, d.shape.join("\u00d7")),
        el("td", {}, d.optimizer))))));
  }
  parts.push(el("p", { class: "note" }, "Pull and push rates are per node, above."));
  root.replaceChildren(...parts);
}

function progressBar(done, total, text) {
  const max = Math.max(total, 1);
  return el("span", { class: "progress" },
    el("progress", { value: Math.min(done, max), max, "aria-label": text }),
    " " + text);
}

function renderMigrations(s, stuck) {
  const root = document.getElementById("migrations");
  if (!s.plan) {
    root.replaceChildren(el("p", { class: "empty" }, "No plan has run."));
    return;
  }
  const p = s.plan;
  const frac = p.bytes_total ? p.bytes_done / p.bytes_total : (p.moves_total ? p.moves_done / p.moves_total : 1);
  const head = el("p", { class: "plan plan-" + p.state },
    "plan ", el("strong", {}, p.id), " (" + p.kind + "): " + p.state + ", "
    + p.moves_done + " / " + p.moves_total + " moves ",
    progressBar(Math.round(1000 * frac), 1000, percent(frac)),
    p.error ? el("span", { class: "flag" }, " " + p.error) : null);
  const rows = s.migrations.map((m) => {
    const stuckFor = stuck.get(m.id);
    const done = m.state === "done" ? m.bytes_total : m.bytes_copied;
    const frac = m.bytes_total ? done / m.bytes_total : (m.state === "done" ? 1 : 0);
    const active = ACTIVE_MOVE_STATES.has(m.state);
    return el("tr", { class: stuckFor ? "move-stuck" : "", "data-move": m.id },
      el("th", { scope: "row" }, m.id),
      el("td", {}, "[" + m.slots[0] + ", " + m.slots[1] + ")"),
      el("td", {}, m.from + " \u2192 " + m.to),
      el("td", {}, m.state, stuckFor ? el("span", { class: "flag" }, " STUCK " + duration(stuckFor)) : null,
        m.error ? el("span", { class: "flag" }, " " + m.error) : null),
      el("td", {}, progressBar(Math.round(1000 * frac), 1000,
        percent(frac) + " of " + bytes(m.bytes_total))),
      el("td", { class: "num" }, active ? bytes(m.bytes_per_s) + "/s, eta " + m.eta_s.toFixed(0) + "s" : "—"));
  });
  fill(root, head, rows.length ? el("table", {},
    el("thead", {}, el("tr", {}, ["move", "slots", "from \u2192 to", "state", "progress", "rate"]
      .map((h, i) => el("th", { scope: "col", class: i === 5 ? "num" : "" }, h)))),
    el("tbody", {}, rows)) : null);
}

function renderCheckpoints(s) {
  const root = document.getElementById("checkpoints");
  const newest = s.last_checkpoint
    ? el("p", {}, "newest cluster checkpoint ", el("strong", {}, s.last_checkpoint))
    : el("p", { class: "flag" }, "\u26a0 No cluster checkpoint yet");
  const rows = [...s.nodes].sort((a, b) => a.id.localeCompare(b.id)).map((n) => {
    const age = n.checkpoint_age_ms;
    const old = checkpointOld(age);
    return el("tr", { class: old ? "checkpoint-old" : "" },
      el("th", { scope: "row" }, n.id), el("td", {}, n.last_checkpoint || "none"),
      el("td", { class: old ? "flag" : "" },
        age === null ? "\u26a0 never" : duration(age) + " ago" + (old ? " \u26a0 OLD" : "")));
  });
  fill(root, newest, rows.length ? el("table", {},
    el("thead", {}, el("tr", {}, ["node", "checkpoint", "age"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows)) : null);
}

function render(s) {
  const now = Date.now();
  const colours = colourOf([...new Set(s.nodes.map((n) => n.id).concat(s.shards.map((sh) => sh.primary)))]
    .filter((id) => id).sort());
  const stuck = stuckMoves(s.migrations, now);
  renderSummary(s);
  renderProblems(problemsOf(s, stuck));
  renderNodes(s, colours);
  renderShards(s, colours);
  renderTables(s);
  renderMigrations(s, stuck);
  renderCheckpoints(s);
}

function showConnection(ok, reason) {
  const line = document.getElementById("connection");
  const stamp = lastSuccess ? new Date(lastSuccess).toLocaleTimeString() : "never";
  if (ok) {
    line.className = "connection live";
    line.textContent = "\u25cf live \u00b7 updated " + stamp;
  } else {
    line.className = "connection lost";
    line.textContent = "\u2716 connection lost (" + reason + ") \u00b7 last update " + stamp
      + (lastSuccess ? ", " + duration(Date.now() - lastSuccess) + " ago" : "");
  }
  document.body.classList.toggle("stale", !ok);
}

async function poll() {
  try {
    const response = await fetch("api/status", { cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      throw new Error((body && body.error) || "HTTP " + response.status);
    }
    render(body);
    lastSuccess = Date.now();
    showConnection(true);
  } catch (e) {
    showConnection(false, e.message || String(e));
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
