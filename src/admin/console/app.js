// trustbridge console: reads the admin API (same origin) and draws it. Plain JS, no library,
// nothing inline (the page is served under a strict CSP). Every value from the API is put in
// the page with textContent / setAttribute, never parsed as HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const POLL_MS = 3000;
  const COLUMNS = [
    { title: "Issuers", kinds: ["issuer"] },
    { title: "Credentials", kinds: ["credential"] },
    { title: "Identities", kinds: ["servicePrincipal", "managedIdentity"] },
    { title: "Resources", kinds: ["resource"] },
  ];
  const SHOWN_EDGES = ["trusts", "grants", "role"];
  const NODE_W = 180, NODE_H = 46, ROW_GAP = 18, TOP = 34, LEFT = 12;
  // Gaps after each column: the last holds the role labels, so it is the widest.
  const GAPS = [70, 70, 190];
  const colX = (c) => LEFT + c * NODE_W + GAPS.slice(0, c).reduce((a, b) => a + b, 0);

  const $ = (id) => document.getElementById(id);
  const state = { token: sessionStorage.getItem("trustbridge.admin.token") || "", hash: null, graph: null, selected: null };

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function setStatus(id, text, error) {
    const s = $(id);
    s.textContent = text || "";
    s.classList.toggle("error", !!error);
  }

  // === API ===

  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    if (state.token) opts.headers["Authorization"] = "Bearer " + state.token;
    const resp = await fetch(path, opts);
    if (resp.status === 401) {
      $("auth").hidden = false;
      setStatus("auth-status", state.token ? "The token was refused." : "This admin API requires a token.", true);
      throw new Error("authentication required");
    }
    let body = null;
    try { body = await resp.json(); } catch (_) { body = null; }
    if (!resp.ok) {
      const why = body && body.error_description ? body.error_description : resp.status + " " + resp.statusText;
      throw new Error(why);
    }
    return body;
  }

  // === policy hash: follows hot reloads ===

  function noteHash(hash) {
    if (!hash) return;
    const changed = state.hash !== null && state.hash !== hash;
    state.hash = hash;
    const code = $("policy-hash");
    code.textContent = hash.slice(0, 12);
    code.setAttribute("title", "policy content hash " + hash);
    if (changed) loadGraph("Policies reloaded: graph refreshed.");
  }

  // === trust graph ===

  async function loadGraph(message) {
    setStatus("graph-status", "Loading…");
    try {
      const graph = await api("/admin/v1/graph");
      state.graph = graph;
      state.hash = graph.policy_hash;
      noteHash(graph.policy_hash);
      drawGraph(graph);
      fillExplainChoices(graph);
      const findings = graph.findings.length;
      setStatus("graph-status", (message ? message + " " : "") + graph.nodes.length + " objects, " +
        findings + " finding" + (findings === 1 ? "" : "s") + ".");
    } catch (e) {
      setStatus("graph-status", "Graph: " + e.message, true);
    }
  }

  function nodeLabel(node) {
    const name = node.name.length > 23 ? node.name.slice(0, 22) + "…" : node.name;
    return name;
  }

  function kindText(node) {
    const k = { issuer: "issuer", credential: "credential", servicePrincipal: "service principal",
      managedIdentity: "managed identity", resource: "resource", application: "application", tenant: "tenant" }[node.kind] || node.kind;
    if (node.kind === "managedIdentity" && node.details.assignment === "workload") return k + " · template";
    if (node.tenant) return k + " · " + node.tenant;
    if (node.kind === "credential" && node.details.mode === "audit") return k + " · audit mode";
    return k;
  }

  function drawGraph(graph) {
    const root = $("graph");
    root.replaceChildren();
    const pos = new Map();
    let rows = 0;
    COLUMNS.forEach((col, c) => {
      const nodes = graph.nodes.filter((n) => col.kinds.includes(n.kind));
      rows = Math.max(rows, nodes.length);
      nodes.forEach((n, r) => pos.set(n.id, { x: colX(c), y: TOP + r * (NODE_H + ROW_GAP), node: n }));
    });
    const width = colX(COLUMNS.length - 1) + NODE_W + LEFT;
    const height = TOP + Math.max(rows, 1) * (NODE_H + ROW_GAP) + 8;
    root.setAttribute("width", width);
    root.setAttribute("height", height);
    root.setAttribute("viewBox", "0 0 " + width + " " + height);

    COLUMNS.forEach((col, c) => {
      root.appendChild(svg("text", { x: colX(c), y: 18, class: "col-title" }, col.title));
    });

    const edges = svg("g", { "aria-hidden": "true" });
    const labels = svg("g", { "aria-hidden": "true" });
    const labelled = new Map();
    for (const e of graph.edges) {
      if (!SHOWN_EDGES.includes(e.kind)) continue;
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      edges.appendChild(svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge " + e.kind }));
      if (e.roles && e.roles.length) {
        const text = e.roles.join(", ");
        // Beside the identity, one line per role edge it has, so labels never overlap.
        const k = (labelled.get(e.from) || 0);
        labelled.set(e.from, k + 1);
        const w = text.length * 6.2 + 8;
        const tx = x1 + 6 + w / 2, ty = y1 - 4 + k * 16;
        labels.appendChild(svg("rect", { x: tx - w / 2, y: ty - 11, width: w, height: 15, rx: 3, class: "edge-label-bg" }));
        labels.appendChild(svg("text", { x: tx, y: ty, "text-anchor": "middle", class: "edge-label" }, text));
      }
    }
    root.appendChild(edges);
    root.appendChild(labels);

    for (const { x, y, node } of pos.values()) {
      const classes = ["node", node.kind];
      if (node.findings.length) classes.push("has-finding");
      if (node.kind === "credential" && node.details.mode === "audit") classes.push("audit");
      const label = kindText(node) + ": " + node.name + (node.findings.length ? " (" + node.findings.length + " finding" + (node.findings.length === 1 ? "" : "s") + ")" : "");
      const g = svg("g", { class: classes.join(" "), tabindex: 0, role: "button", "aria-label": label, "data-id": node.id, transform: `translate(${x},${y})` });
      g.appendChild(svg("title", {}, label + "\n" + location(node)));
      g.appendChild(svg("rect", { width: NODE_W, height: NODE_H, rx: 7 }));
      g.appendChild(svg("text", { x: 10, y: 16, class: "kind" }, kindText(node)));
      g.appendChild(svg("text", { x: 10, y: 35, class: "name" }, nodeLabel(node)));
      if (node.findings.length) g.appendChild(svg("text", { x: NODE_W - 20, y: 18, class: "warn" }, "⚠"));
      g.addEventListener("click", () => select(node.id));
      g.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); select(node.id); }
      });
      root.appendChild(g);
    }
    root.setAttribute("aria-label", "Trust graph: " + pos.size + " nodes");

    const others = graph.nodes.filter((n) => !pos.has(n.id));
    const p = $("graph-others");
    p.replaceChildren();
    if (others.length) {
      p.appendChild(document.createTextNode("Also declared: "));
      others.forEach((n, i) => {
        if (i) p.appendChild(document.createTextNode(", "));
        const b = el("button", { type: "button", class: "linkish" }, kindText(n) + " " + n.name + (n.findings.length ? " ⚠" : ""));
        b.addEventListener("click", () => select(n.id));
        p.appendChild(b);
      });
    }
    if (state.selected && graph.nodes.some((n) => n.id === state.selected)) select(state.selected);
  }

  function location(node) {
    let s = node.file + "#" + node.document;
    if (node.line) s = node.file + ":" + node.line;
    if (node.path) s += " " + node.path;
    return s;
  }

  function select(id) {
    const graph = state.graph;
    if (!graph) return;
    const node = graph.nodes.find((n) => n.id === id);
    if (!node) return;
    state.selected = id;
    for (const g of $("graph").querySelectorAll(".node")) g.classList.toggle("selected", g.getAttribute("data-id") === id);
    const box = $("details");
    box.replaceChildren(el("h3", { id: "details-title" }, kindText(node) + ": " + node.name));
    const dl = el("dl");
    const row = (k, v) => { dl.appendChild(el("dt", {}, k)); dl.appendChild(el("dd", {}, v)); };
    row("defined in", location(node));
    for (const [k, v] of Object.entries(node.details)) {
      if (k === "fetch" && v && typeof v === "object") {
        // Effective issuer fetch settings: the global --issuer-* value or the issuer's own.
        for (const [f, s] of Object.entries(v)) {
          row("fetch." + f, s.value + (s.source === "issuer" ? " (this issuer)" : " (global)"));
        }
        continue;
      }
      row(k, typeof v === "string" ? v : JSON.stringify(v));
    }
    const incoming = graph.edges.filter((e) => e.to === id && SHOWN_EDGES.includes(e.kind));
    const outgoing = graph.edges.filter((e) => e.from === id && SHOWN_EDGES.includes(e.kind));
    const name = (nid) => { const n = graph.nodes.find((x) => x.id === nid); return n ? n.name : nid; };
    if (incoming.length) row("from", incoming.map((e) => name(e.from) + (e.roles ? " [" + e.roles.join(", ") + "]" : "")).join("; "));
    if (outgoing.length) row("to", outgoing.map((e) => name(e.to) + (e.roles ? " [" + e.roles.join(", ") + "]" : "")).join("; "));
    box.appendChild(dl);
    for (const f of node.findings) {
      const d = el("div", { class: "finding" });
      d.appendChild(el("strong", {}, "⚠ " + f.code));
      if (f.position) d.appendChild(el("div", {}, "at " + f.position));
      d.appendChild(el("div", {}, f.message));
      d.appendChild(el("div", {}, "fix: " + f.fix));
      box.appendChild(d);
    }
  }

  // === who can become what ===

  function option(value, text) { return el("option", { value }, text); }

  function fillExplainChoices(graph) {
    const keep = (sel, fill) => { const v = sel.value; sel.replaceChildren(); fill(); if ([...sel.options].some((o) => o.value === v)) sel.value = v; };
    keep($("ex-tenant"), () => graph.nodes.filter((n) => n.kind === "tenant").forEach((n) => $("ex-tenant").appendChild(option(n.name, n.name))));
    keep($("ex-issuer"), () => {
      $("ex-issuer").appendChild(option("", "from the claims' iss"));
      graph.nodes.filter((n) => n.kind === "issuer").forEach((n) => $("ex-issuer").appendChild(option(n.name, n.name + " (" + n.details.issuer + ")")));
    });
    keep($("ex-resource"), () => {
      $("ex-resource").appendChild(option("", "none (no verdict)"));
      graph.nodes.filter((n) => n.kind === "resource").forEach((n) => $("ex-resource").appendChild(option(n.name, n.name)));
    });
    const input = $("ex-input");
    if (!input.value) {
      const issuer = graph.nodes.find((n) => n.kind === "issuer");
      input.value = JSON.stringify({ iss: issuer ? issuer.details.issuer : "", sub: "", aud: "api://trustbridge" }, null, 2);
    }
  }

  function mode() { return document.querySelector("input[name=ex-mode]:checked").value; }

  function onModeChange() {
    const token = mode() === "token";
    $("ex-input-label").textContent = token ? "Token (compact JWS)" : "Claims";
    $("ex-issuer").disabled = token;
    $("ex-input").value = "";
    if (!token && state.graph) fillExplainChoices(state.graph);
  }

  async function onExplain(ev) {
    ev.preventDefault();
    const body = { tenant: $("ex-tenant").value };
    const client = $("ex-client").value.trim();
    const resource = $("ex-resource").value;
    if (client) body.client_id = client;
    // A client_credentials request names its resource by scope, a token exchange by resource.
    if (resource) { if (client) body.scope = resource + "/.default"; else body.resource = resource; }
    const text = $("ex-input").value.trim();
    if (mode() === "token") {
      body.token = text;
    } else {
      try { body.claims = JSON.parse(text || "{}"); } catch (e) { setStatus("ex-status", "The claims are not valid JSON: " + e.message, true); return; }
      if ($("ex-issuer").value) body.issuer = $("ex-issuer").value;
    }
    setStatus("ex-status", "Explaining…");
    try {
      const result = await api("/admin/v1/explain", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      setStatus("ex-status", "");
      noteHash(result.policy_hash);
      showExplanation(result);
    } catch (e) {
      setStatus("ex-status", e.message, true);
      $("explain-result").replaceChildren();
    }
  }

  function showExplanation(r) {
    const out = $("explain-result");
    out.replaceChildren();
    const d = r.decision;
    let verdict;
    if (d.outcome === "allow") {
      verdict = el("div", { class: "verdict allow", id: "verdict" }, "ALLOW as " + d.identity + " (" + d.identity_kind + ") via " + d.credential + ": roles [" + d.roles.join(", ") + "] on " + d.resource);
    } else if (d.outcome === "deny") {
      verdict = el("div", { class: "verdict deny", id: "verdict" }, "DENY " + d.reason + (d.code ? " (AADSTS" + d.code + ")" : ""));
      verdict.appendChild(el("span", { class: "why" }, d.description));
    } else {
      verdict = el("div", { class: "verdict neutral", id: "verdict" }, "Not evaluated: " + d.detail);
    }
    out.appendChild(verdict);
    const t = r.token;
    out.appendChild(el("p", { class: "signature" + (r.signature.status === "failed" ? " failed" : "") },
      "Token: issuer " + t.issuer + ", sub " + (t.sub || "(none)") + ", aud [" + t.aud.join(", ") + "]. Signature: " + r.signature.detail));
    for (const n of r.notes) out.appendChild(el("p", { class: "hint" }, n));
    if (!r.candidates.length) out.appendChild(el("p", { class: "hint" }, "No candidate credential."));
    for (const c of r.candidates) {
      const box = el("div", { class: "candidate" + (c.matched ? " matched" : "") });
      const h = el("h4", {}, c.identity + " / " + c.credential + (c.mode === "audit" ? " (audit mode)" : "") + " — " + (c.matched ? "matches" : "stopped by " + c.failed_check) + " ");
      h.appendChild(el("span", { class: "where" }, c.declared_at));
      box.appendChild(h);
      const table = el("table", { class: "checks" });
      for (const k of c.checks) {
        const tr = el("tr");
        const cls = k.status === "pass" ? "pass" : k.status === "FAIL" ? "fail" : "skip-status";
        tr.appendChild(el("td", { class: cls }, k.status));
        tr.appendChild(el("td", {}, k.check));
        tr.appendChild(el("td", {}, k.detail));
        table.appendChild(tr);
      }
      box.appendChild(table);
      out.appendChild(box);
    }
  }

  // === recent decisions ===

  let polling = null;

  async function loadDecisions() {
    const params = new URLSearchParams({ limit: "100" });
    if ($("dec-outcome").value) params.set("outcome", $("dec-outcome").value);
    if ($("dec-identity").value.trim()) params.set("identity", $("dec-identity").value.trim());
    try {
      const r = await api("/admin/v1/decisions?" + params.toString());
      noteHash(r.policy_hash);
      showDecisions(r.decisions);
      setStatus("dec-status", r.decisions.length + " shown (up to " + r.capacity + " kept) · " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("dec-status", "Decisions: " + e.message, true);
    }
  }

  function showDecisions(list) {
    const body = $("decisions").tBodies[0];
    body.replaceChildren();
    if (!list.length) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: 7, class: "empty" }, "No decision since the gateway started."));
      body.appendChild(tr);
      return;
    }
    for (const e of list) {
      const outcome = e["decision.outcome"] || "";
      const tr = el("tr", { class: outcome });
      tr.appendChild(el("td", {}, e.time ? e.time.replace("T", " ").replace("Z", "") : ""));
      tr.appendChild(el("td", { class: "outcome" }, outcome));
      tr.appendChild(el("td", {}, e["identity.name"] || ""));
      tr.appendChild(el("td", {}, e.subject || ""));
      tr.appendChild(el("td", {}, e.reason || e.failed_check || ""));
      const hash = e["policy.hash"] || "";
      tr.appendChild(el("td", { title: hash }, hash.slice(0, 8)));
      const detail = outcome === "granted"
        ? (e["credential.name"] || "") + " → " + (e.resource || "") + " [" + (e.roles || []).join(", ") + "]"
        : (e.detail || "");
      tr.appendChild(el("td", { class: "detail" }, detail));
      body.appendChild(tr);
    }
  }

  // === identities ===

  function when(t) { return t == null ? "never" : new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19); }

  async function loadIdentities() {
    const unused = $("id-unused").value;
    try {
      const r = await api("/admin/v1/identities" + (unused ? "?unusedFor=" + encodeURIComponent(unused) : ""));
      const body = $("identities").tBodies[0];
      body.replaceChildren();
      for (const i of r.identities) {
        const rows = i.credentials.length ? i.credentials : [null];
        for (const c of rows) {
          const s = c || i;
          const tr = el("tr", { class: c && c.stale ? "stale" : "" });
          tr.appendChild(el("td", {}, i.tenant + "/" + i.name + " (" + i.kind + ")"));
          tr.appendChild(el("td", {}, c ? c.name + (c.stale ? " · stale" : "") : ""));
          tr.appendChild(el("td", {}, String(s.granted)));
          tr.appendChild(el("td", {}, String(s.denied)));
          tr.appendChild(el("td", {}, when(s.first_seen)));
          tr.appendChild(el("td", {}, when(s.last_used)));
          tr.appendChild(el("td", {}, s.last_subject || ""));
          tr.appendChild(el("td", {}, s.last_caller || ""));
          body.appendChild(tr);
        }
      }
      setStatus("id-status", r.identities.length + " identities · " + new Date().toLocaleTimeString());
    } catch (e) {
      setStatus("id-status", "Identities: " + e.message, true);
    }
  }

  function schedule() {
    if (polling) clearInterval(polling);
    polling = $("dec-auto").checked ? setInterval(loadDecisions, POLL_MS) : null;
  }

  // === start ===

  function start() {
    $("auth").addEventListener("submit", (ev) => {
      ev.preventDefault();
      state.token = $("auth-token").value.trim();
      sessionStorage.setItem("trustbridge.admin.token", state.token);
      setStatus("auth-status", "");
      loadGraph();
      loadDecisions();
      loadIdentities();
    });
    $("graph-refresh").addEventListener("click", () => loadGraph());
    $("explain-form").addEventListener("submit", onExplain);
    for (const r of document.querySelectorAll("input[name=ex-mode]")) r.addEventListener("change", onModeChange);
    $("decisions-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadDecisions(); });
    $("dec-outcome").addEventListener("change", loadDecisions);
    $("dec-auto").addEventListener("change", schedule);
    $("identities-form").addEventListener("submit", (ev) => { ev.preventDefault(); loadIdentities(); });
    $("id-unused").addEventListener("change", loadIdentities);
    loadGraph();
    loadDecisions();
    loadIdentities();
    schedule();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
