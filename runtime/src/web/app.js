"use strict";
// The ZTP status page: state from GET /api/events (a snapshot, then changes); every
// value from a device is put in the page with textContent, never as HTML.
(function () {
  const $ = (id) => document.getElementById(id);
  const devices = new Map();
  let transfers = [];
  let logIp = null;
  let logBuffer = null; // log lines that arrive while a log view is loading

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function ipKey(ip) {
    const p = ip.split(".");
    if (p.length === 4 && p.every((x) => /^\d+$/.test(x))) {
      return p.map((x) => x.padStart(3, "0")).join(".");
    }
    return "~" + ip;
  }

  function when(ts) {
    if (!ts) return "";
    const d = new Date(ts);
    if (isNaN(d)) return ts;
    const pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function ago(ts) {
    const s = Math.round((Date.now() - new Date(ts).getTime()) / 1000);
    if (!isFinite(s)) return "";
    if (s < 5) return "just now";
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }

  function size(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
  }

  function duration(s) {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h > 0 ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
  }

  function statusLabel(s) {
    return { completed: "Completed", failed: "Failed", in_progress: "In progress", unknown: "Unknown" }[s] || s;
  }

  function transferLine(t) {
    const wrap = el("span", "transfer");
    const pct = t.total > 0 ? Math.min(100, Math.floor((t.bytes * 100) / t.total)) : 0;
    const meter = el("span", "meter");
    const fill = el("span");
    fill.style.width = pct + "%";
    meter.appendChild(fill);
    meter.setAttribute("role", "progressbar");
    meter.setAttribute("aria-valuenow", String(pct));
    meter.setAttribute("aria-valuemin", "0");
    meter.setAttribute("aria-valuemax", "100");
    let text = `${t.proto.toUpperCase()} ${t.path}: ${pct}% · ${size(t.bytes)} of ${size(t.total)}`;
    if (t.rate > 0) text += ` · ${size(t.rate)}/s`;
    text += t.eta_s === null || t.eta_s === undefined ? " · ETA –" : ` · ETA ${duration(t.eta_s)}`;
    wrap.appendChild(meter);
    wrap.appendChild(el("span", "dl", text));
    return wrap;
  }

  function cell(tr, label, cls, content) {
    const td = el("td", cls);
    td.dataset.label = label;
    if (content instanceof Node) td.appendChild(content);
    else td.textContent = content || "";
    tr.appendChild(td);
    return td;
  }

  function progressCell(d) {
    const prog = el("div", "progress");
    prog.appendChild(el("span", "step", d.task || (d.status === "unknown" ? "leased, waiting for a report" : "")));
    for (const t of transfers.filter((t) => t.ip === d.ip_addr)) prog.appendChild(transferLine(t));
    return prog;
  }

  function buildRow(d) {
    const tr = el("tr");
    tr.dataset.ip = d.ip_addr;
    tr.dataset.status = d.status;
    const link = el("a", null, d.ip_addr);
    link.href = "#log=" + encodeURIComponent(d.ip_addr);
    link.title = "Show the log of " + d.ip_addr;
    link.addEventListener("click", (ev) => { ev.preventDefault(); openLog(d.ip_addr); });
    cell(tr, "IP", "ip", link);
    cell(tr, "Name", "name", d.name || "");
    cell(tr, "System ID", "sid", d.system_id);
    cell(tr, "Platform", "platform", d.platform);
    cell(tr, "MAC", "mac", d.mac || "");
    cell(tr, "ZTP Status", "status", el("span", "badge " + d.status, statusLabel(d.status)));
    cell(tr, "ZTP Latest Event", "event", d.last_log || d.task || "");
    cell(tr, "Progress", "prog", progressCell(d));
    const w = cell(tr, "Last Updated", "when", when(d.last_updated_at));
    w.title = d.last_updated_at + " (" + ago(d.last_updated_at) + ")";
    const actions = el("div");
    const logBtn = el("button", "log-btn", "Log");
    logBtn.type = "button";
    logBtn.addEventListener("click", () => openLog(d.ip_addr));
    const del = el("button", "delete", "Delete");
    del.type = "button";
    del.setAttribute("aria-label", "Delete " + d.ip_addr);
    del.addEventListener("click", () => askDelete(d.ip_addr));
    actions.append(logBtn, " ", del);
    cell(tr, "", "actions", actions);
    return tr;
  }

  function matches(d) {
    const q = $("filter").value.trim().toLowerCase();
    if (!q) return true;
    return [d.ip_addr, d.name, d.system_id, d.platform, d.mac, d.status, statusLabel(d.status), d.task, d.last_log]
      .some((v) => v && String(v).toLowerCase().includes(q));
  }

  // One device changed: replace its row only (a full render would also replace the
  // buttons under a pointer that is about to click them). New rows need the full
  // render, for their place in the order.
  function updateDevice(d) {
    const old = rowOf(d.ip_addr);
    devices.set(d.ip_addr, d);
    if (!old || !matches(d)) return renderDevices();
    const tr = buildRow(d);
    tr.classList.add("flash");
    old.replaceWith(tr);
    renderTally();
  }

  function rowOf(ip) {
    for (const tr of $("devices").tBodies[0].rows) if (tr.dataset.ip === ip) return tr;
    return null;
  }

  // Downloads changed: refresh the progress cells of the devices concerned only.
  function updateTransfers(next) {
    const ips = new Set([...transfers, ...next].map((t) => t.ip));
    transfers = next;
    for (const ip of ips) {
      const tr = rowOf(ip), d = devices.get(ip);
      if (tr && d) tr.querySelector("td.prog").replaceChildren(progressCell(d));
    }
    renderOthers();
  }

  function renderTally() {
    const counts = {};
    for (const d of devices.values()) counts[d.status] = (counts[d.status] || 0) + 1;
    const tally = $("tally");
    tally.replaceChildren();
    for (const s of ["completed", "in_progress", "failed", "unknown"]) {
      if (counts[s]) tally.appendChild(el("span", "badge " + s, `${counts[s]} ${statusLabel(s).toLowerCase()}`));
    }
  }

  function renderDevices() {
    const body = $("devices").querySelector("tbody");
    const rows = [...devices.values()].sort((a, b) => (ipKey(a.ip_addr) < ipKey(b.ip_addr) ? -1 : 1));
    const frag = document.createDocumentFragment();
    let shown = 0;
    for (const d of rows) {
      if (!matches(d)) continue;
      frag.appendChild(buildRow(d));
      shown++;
    }
    body.replaceChildren(frag);
    $("count").textContent = devices.size ? (shown === devices.size ? `(${devices.size})` : `(${shown} of ${devices.size})`) : "";
    $("empty").hidden = devices.size > 0;
    renderTally();
    renderOthers();
  }

  // Downloads by addresses that have no device row (an operator's laptop, a device
  // that has not leased from us): still worth seeing.
  function renderOthers() {
    const other = transfers.filter((t) => !devices.has(t.ip));
    const list = $("others-list");
    list.replaceChildren();
    for (const t of other) {
      const li = el("li");
      li.appendChild(el("span", "mono", t.ip + " "));
      li.appendChild(transferLine(t));
      list.appendChild(li);
    }
    $("others").hidden = other.length === 0;
  }

  function renderServices(s) {
    if (!s) return;
    $("generation").textContent = s.generation || "–";
    $("fabric").textContent = s.fabric ? "fabric " + s.fabric : "";
    const r = s.last_refused_reload;
    const refused = $("refused");
    refused.textContent = r ? `${when(r.at)}: ${r.reason}` : "none";
    refused.classList.toggle("has", !!r);
    const body = $("services").querySelector("tbody");
    body.replaceChildren();
    for (const v of s.services || []) {
      const tr = el("tr");
      tr.dataset.name = v.name;
      tr.appendChild(el("td", null, v.name));
      tr.appendChild(el("td", "mono", v.address));
      const st = el("td");
      st.appendChild(el("span", "badge " + v.state, v.state));
      tr.appendChild(st);
      tr.appendChild(el("td", "when", when(v.last_updated_at)));
      body.appendChild(tr);
    }
  }

  function logItem(e) {
    const li = el("li");
    li.appendChild(el("span", "at", when(e.at)));
    li.appendChild(el("span", "kind", e.kind));
    li.appendChild(el("span", "text", e.text));
    return li;
  }

  async function openLog(ip) {
    logIp = ip;
    logBuffer = [];
    $("log-ip").textContent = ip;
    const list = $("log");
    list.replaceChildren(el("li", "muted", "loading…"));
    if (!$("logdlg").open) $("logdlg").showModal();
    try {
      const r = await fetch("/api/ztp/device/" + encodeURIComponent(ip) + "/log", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const lines = await r.json();
      if (logIp !== ip) return;
      list.replaceChildren(...lines.map(logItem));
      // Lines that arrived during the fetch and are not in it yet.
      const seen = new Set(lines.slice(-50).map((e) => e.kind + "\u0000" + e.text));
      for (const e of logBuffer) if (!seen.has(e.kind + "\u0000" + e.text)) list.appendChild(logItem(e));
      if (!list.children.length) list.appendChild(el("li", "muted", "no log lines"));
    } catch (err) {
      list.replaceChildren(el("li", "error", "could not load the log: " + err.message));
    }
    logBuffer = null;
    list.scrollTop = list.scrollHeight;
  }

  function closeLog() {
    logIp = null;
    $("logdlg").close();
  }

  let deleting = null;
  function askDelete(ip) {
    deleting = ip;
    $("del-ip").textContent = ip;
    $("del-error").textContent = "";
    $("del-token").value = sessionStorage.getItem("ztp-admin-token") || "";
    $("deldlg").showModal();
    $("del-token").focus();
  }

  async function doDelete(ev) {
    ev.preventDefault();
    const ip = deleting;
    const token = $("del-token").value.trim();
    if (!ip || !token) { $("del-error").textContent = "The admin token is required."; return; }
    $("del-confirm").disabled = true;
    try {
      const r = await fetch("/api/ztp/device/" + encodeURIComponent(ip), {
        method: "DELETE",
        headers: { Authorization: "Bearer " + token },
      });
      if (r.status === 403) {
        sessionStorage.removeItem("ztp-admin-token");
        $("del-error").textContent = "Refused: the admin token is wrong (or the server has none configured).";
        return;
      }
      if (!r.ok && r.status !== 404) {
        $("del-error").textContent = "Delete failed: HTTP " + r.status;
        return;
      }
      // Kept for this tab only, so a second delete does not ask again.
      sessionStorage.setItem("ztp-admin-token", token);
      devices.delete(ip);
      renderDevices();
      $("deldlg").close();
    } catch (err) {
      $("del-error").textContent = "Delete failed: " + err.message;
    } finally {
      $("del-confirm").disabled = false;
    }
  }

  function setConn(state, text) {
    const c = $("conn");
    c.dataset.state = state;
    c.textContent = text;
  }

  function connect() {
    const es = new EventSource("/api/events");
    const on = (name, f) => es.addEventListener(name, (m) => {
      let data;
      try { data = JSON.parse(m.data); } catch { return; }
      f(data);
    });
    es.onopen = () => setConn("live", "live");
    es.onerror = () => setConn("lost", "reconnecting…");
    on("snapshot", (s) => {
      devices.clear();
      for (const d of s.devices || []) devices.set(d.ip_addr, d);
      transfers = s.transfers || [];
      renderDevices();
      renderServices(s.services);
      setConn("live", "live");
    });
    on("device", updateDevice);
    on("deleted", (d) => { devices.delete(d.ip); renderDevices(); });
    on("progress", updateTransfers);
    on("services", renderServices);
    on("log", (e) => {
      if (e.ip !== logIp) return;
      if (logBuffer) { logBuffer.push(e); return; }
      const list = $("log");
      const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
      const none = list.querySelector("li.muted");
      if (none) none.remove();
      list.appendChild(logItem(e));
      if (stick) list.scrollTop = list.scrollHeight;
    });
  }

  $("filter").addEventListener("input", () => renderDevices());
  $("log-close").addEventListener("click", closeLog);
  $("logdlg").addEventListener("close", () => { logIp = null; });
  $("del-cancel").addEventListener("click", () => $("deldlg").close());
  $("delform").addEventListener("submit", doDelete);
  // The relative age in a Last Updated tooltip is worked out when it is hovered.
  $("devices").addEventListener("mouseover", (ev) => {
    const td = ev.target.closest && ev.target.closest("td.when");
    const d = td && devices.get(td.parentElement.dataset.ip);
    if (d) td.title = d.last_updated_at + " (" + ago(d.last_updated_at) + ")";
  });
  const m = /^#log=(.+)$/.exec(location.hash);
  connect();
  if (m) openLog(decodeURIComponent(m[1]));
})();
