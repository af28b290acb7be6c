// agentd playground: chat with the agent over POST /api/v1/chat/stream (Server-Sent Events
// read with fetch, because EventSource can neither POST nor send headers). No framework, no
// external resources; served as a file of its own because the CSP forbids inline scripts.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    credential: $("credential"),
    org: $("org"),
    session: $("session"),
    newSession: $("new-session"),
    error: $("error"),
    confirmation: $("confirmation"),
    transcript: $("transcript"),
    state: $("state"),
    composer: $("composer"),
    message: $("message"),
    send: $("send"),
  };
  const STORE_CREDENTIAL = "agentd.playground.credential";
  const STORE_ORG = "agentd.playground.org";
  const BOOKING = /APPT-[A-Z0-9]+/;
  let busy = false;

  // --- helpers -------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role") node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) node.append(c);
    return node;
  }

  function newUuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    // randomUUID needs a secure context; a plain-HTTP LAN address is not one.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function authHeaders() {
    const cred = els.credential.value.trim();
    if (!cred) return null;
    return cred.startsWith("ak_") ? { "X-API-Key": cred } : { Authorization: `Bearer ${cred}` };
  }

  function pretty(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function scrollDown() {
    els.transcript.scrollTop = els.transcript.scrollHeight;
  }

  function clearEmptyNote() {
    const note = els.transcript.querySelector(".empty");
    if (note) note.remove();
  }

  // --- status, errors, confirmation ----------------------------------------------------

  function setState(state) {
    if (!state) return;
    els.state.textContent = `State: ${state}`;
    els.state.dataset.state = state;
  }

  function showError(message) {
    els.error.replaceChildren(el("strong", {}, "Error: "), message);
    els.error.hidden = false;
  }

  function showProblem(p, fallbackStatus) {
    if (!p || typeof p !== "object") {
      showError(`HTTP ${fallbackStatus}`);
      return;
    }
    const parts = [p.title || `HTTP ${p.status || fallbackStatus}`];
    if (p.detail) parts.push(p.detail);
    let text = parts.join(": ");
    if (p.code) text += ` (${p.code})`;
    if (Array.isArray(p.errors) && p.errors.length) {
      text += ` ${p.errors.map((e) => `${e.field}: ${e.message}`).join("; ")}`;
    }
    if (p.request_id) text += ` [request ${p.request_id}]`;
    showError(text);
  }

  function clearError() {
    els.error.hidden = true;
    els.error.replaceChildren();
  }

  function showConfirmation(number) {
    els.confirmation.replaceChildren("Booking confirmed: ", el("strong", {}, number));
    els.confirmation.dataset.appointment = number;
    els.confirmation.hidden = false;
  }

  function resetView() {
    clearError();
    els.confirmation.hidden = true;
    els.confirmation.replaceChildren();
    els.state.textContent = "State: none";
    els.state.dataset.state = "";
    els.transcript.replaceChildren();
  }

  // --- transcript ----------------------------------------------------------------------

  function addUser(text) {
    clearEmptyNote();
    const node = el("article", { class: "msg user", "data-role": "user" },
      el("h2", { class: "who" }, "You"), el("p", { class: "text" }, text));
    els.transcript.append(node);
    scrollDown();
    return node;
  }

  function addAssistant(text) {
    clearEmptyNote();
    const tools = el("div", { class: "tools" });
    const body = el("p", { class: "text" }, text || "");
    const node = el("article", { class: "msg assistant", "data-role": "assistant" },
      el("h2", { class: "who" }, "Agent"), tools, body);
    els.transcript.append(node);
    scrollDown();
    return { node, tools, body };
  }

  // Renders `text` with any booking number highlighted.
  function setReply(body, text) {
    const m = BOOKING.exec(text);
    if (!m) {
      body.textContent = text;
      return;
    }
    body.replaceChildren(text.slice(0, m.index), el("mark", {}, m[0]), text.slice(m.index + m[0].length));
  }

  function toolEntry(container, kind, name, payload, failed) {
    const label = kind === "call" ? `Tool call: ${name}` : `Tool result: ${name}${failed ? " (error)" : ""}`;
    const entry = el("details", { class: `tool ${kind}${failed ? " failed" : ""}`, "data-testid": `tool-${kind}` },
      el("summary", {}, label), el("pre", {}, pretty(payload)));
    container.append(entry);
    scrollDown();
  }

  // --- history -------------------------------------------------------------------------

  async function loadHistory() {
    const id = els.session.value.trim();
    resetView();
    if (!id) return;
    const headers = authHeaders();
    if (!headers) {
      showError("Paste an API key or token first.");
      return;
    }
    let res;
    try {
      res = await fetch(`/api/v1/sessions/${encodeURIComponent(id)}/history`, { headers });
    } catch (e) {
      showError(`Network error: ${e.message}`);
      return;
    }
    if (res.status === 404) {
      els.transcript.append(el("p", { class: "empty" }, "A new session: nothing said yet."));
      return;
    }
    if (!res.ok) {
      showProblem(await res.json().catch(() => null), res.status);
      return;
    }
    const history = await res.json();
    let current = null;
    for (const m of history.messages || []) {
      if (m.role === "user") {
        addUser(m.content);
        current = null;
      } else if (m.role === "assistant") {
        if (!current) current = addAssistant("");
        for (const c of m.tool_calls || []) toolEntry(current.tools, "call", c.name, c.arguments);
        if (m.content) {
          setReply(current.body, m.content);
          const found = BOOKING.exec(m.content);
          if (found) showConfirmation(found[0]);
        }
      } else if (m.role === "tool") {
        if (!current) current = addAssistant("");
        let result = m.content;
        try { result = JSON.parse(m.content); } catch (_) { /* plain text result */ }
        const failed = result && typeof result === "object" && "error" in result;
        toolEntry(current.tools, "result", m.name || "tool", result, failed);
      }
    }
    if (history.metadata) setState(history.metadata.current_state);
  }

  // --- Server-Sent Events over fetch ---------------------------------------------------

  // Parses one SSE block (the lines between blank lines); null for comments and keep-alives.
  function parseBlock(block) {
    let event = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    if (!data.length) return null;
    let parsed;
    try { parsed = JSON.parse(data.join("\n")); } catch (_) { parsed = { raw: data.join("\n") }; }
    return { event, id, data: parsed };
  }

  async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const ev = parseBlock(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (ev) yield ev;
      }
    }
    buffer += decoder.decode();
    const last = parseBlock(buffer.replace(/\r\n?/g, "\n").trim());
    if (last) yield last;
  }

  function setBusy(on) {
    busy = on;
    els.send.disabled = on;
    els.transcript.setAttribute("aria-busy", on ? "true" : "false");
    document.body.dataset.busy = on ? "true" : "false";
  }

  async function send(message) {
    const headers = authHeaders();
    if (!headers) {
      showError("Paste an API key or token first.");
      els.credential.focus();
      return;
    }
    if (!els.session.value.trim()) els.session.value = newUuid();
    clearError();
    setBusy(true);
    addUser(message);
    const reply = addAssistant("");
    reply.node.setAttribute("aria-busy", "true");
    let text = "";
    try {
      const res = await fetch("/api/v1/chat/stream", {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({
          message,
          session_id: els.session.value.trim(),
          org_id: els.org.value.trim(),
        }),
      });
      if (!res.ok || !res.body) {
        showProblem(await res.json().catch(() => null), res.status);
        reply.node.classList.add("failed");
        reply.body.textContent = "(no reply)";
        return;
      }
      for await (const { event, data } of sseEvents(res.body)) {
        if (event === "state") {
          setState(data.current_state);
        } else if (event === "chunk") {
          text += data.chunk || "";
          reply.body.textContent = text;
          scrollDown();
        } else if (event === "tool_call") {
          toolEntry(reply.tools, "call", data.name, data.arguments);
        } else if (event === "tool_result") {
          const failed = data.result && typeof data.result === "object" && "error" in data.result;
          toolEntry(reply.tools, "result", data.name, data.result, failed);
        } else if (event === "done") {
          const full = typeof data.response === "string" ? data.response : text;
          setReply(reply.body, full);
          if (data.metadata) setState(data.metadata.current_state);
          const found = BOOKING.exec(full);
          if (found) showConfirmation(found[0]);
        } else if (event === "error") {
          showProblem(data.error, 500);
          reply.node.classList.add("failed");
          if (!text) reply.body.textContent = "(no reply)";
        }
      }
    } catch (e) {
      showError(`Network error: ${e.message}`);
      reply.node.classList.add("failed");
    } finally {
      reply.node.removeAttribute("aria-busy");
      reply.node.dataset.done = "true";
      setBusy(false);
      scrollDown();
    }
  }

  // --- wiring --------------------------------------------------------------------------

  try {
    els.credential.value = sessionStorage.getItem(STORE_CREDENTIAL) || "";
    els.org.value = sessionStorage.getItem(STORE_ORG) || els.org.value;
  } catch (_) { /* storage disabled: nothing to restore */ }

  els.credential.addEventListener("input", () => {
    try { sessionStorage.setItem(STORE_CREDENTIAL, els.credential.value.trim()); } catch (_) { /* ignore */ }
  });
  els.org.addEventListener("input", () => {
    try { sessionStorage.setItem(STORE_ORG, els.org.value.trim()); } catch (_) { /* ignore */ }
  });
  els.settings = $("settings");
  els.settings.addEventListener("submit", (e) => e.preventDefault());

  els.newSession.addEventListener("click", () => {
    els.session.value = newUuid();
    resetView();
    els.transcript.append(el("p", { class: "empty" }, "A new session: nothing said yet."));
    els.message.focus();
  });
  els.session.addEventListener("change", () => { loadHistory(); });

  els.composer.addEventListener("submit", (e) => {
    e.preventDefault();
    const message = els.message.value.trim();
    if (!message || busy) return;
    els.message.value = "";
    send(message);
  });
  els.message.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      els.composer.requestSubmit();
    }
  });
})();
