/* Datamonkey Chat: the single page. Plain browser JavaScript, no build step.
 *
 * Talks only to this origin's /api/v1. Model text is untrusted: it is rendered with marked
 * and then sanitized with DOMPurify before it touches the DOM. No inline scripts or handlers
 * anywhere, so the page runs under a strict Content-Security-Policy (see api/routes/web.py).
 */
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "datamonkey-chat.token";
  const UNTITLED = "New conversation";
  const POLL_MIN_MS = 1500;
  const POLL_MAX_MS = 10000;

  const $ = (id) => document.getElementById(id);
  const els = {
    app: $("app"),
    sidebar: $("sidebar"),
    scrim: $("scrim"),
    menu: $("menu-button"),
    newChat: $("new-chat"),
    list: $("conversation-list"),
    emptyList: $("empty-list"),
    datasetsSection: $("datasets-section"),
    datasetList: $("dataset-list"),
    forget: $("forget-me"),
    title: $("conversation-title"),
    thread: $("thread"),
    welcome: $("welcome"),
    messages: $("messages"),
    error: $("error-line"),
    form: $("composer"),
    input: $("input"),
    send: $("send"),
    stop: $("stop"),
    attach: $("attach"),
    file: $("file-input"),
    drop: $("drop-overlay"),
  };

  const state = {
    token: readToken(),
    conversations: [],
    currentId: null,
    streaming: null, // {controller, conversationId}
    openSeq: 0, // guards against out-of-order conversation loads
  };

  /* ------------------------------------------------------------------ token */

  function readToken() {
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch {
      return null; // storage disabled: the session lasts as long as the page
    }
  }

  function saveToken(token) {
    state.token = token;
    try {
      if (token) localStorage.setItem(TOKEN_KEY, token);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      /* storage disabled */
    }
  }

  /* -------------------------------------------------------------------- API */

  class ApiError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function describeError(status, body) {
    if (body && typeof body === "object") {
      if (Array.isArray(body.detail)) {
        // FastAPI request validation
        return body.detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
      }
      const head = body.message || body.error || (typeof body.detail === "string" ? body.detail : "");
      let details = body.details;
      if (details && typeof details !== "string") details = JSON.stringify(details);
      if (head && details && details !== head) return `${head}: ${details}`;
      if (head || details) return head || details;
    }
    if (status === 0) return "the server could not be reached";
    return `the server answered ${status}`;
  }

  async function api(path, { method = "GET", json, body, accept = "application/json", signal } = {}) {
    const headers = { Accept: accept };
    if (state.token) headers.user_token = state.token;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(API + path, { method, headers, body, signal, credentials: "same-origin" });
    } catch (err) {
      if (signal && signal.aborted) throw err;
      throw new ApiError(0, "the server could not be reached", null);
    }
    const issued = response.headers.get("X-Session-Token");
    if (issued) saveToken(issued);
    if (!response.ok) {
      let errBody = null;
      try {
        errBody = await response.json();
      } catch {
        /* not JSON */
      }
      throw new ApiError(response.status, describeError(response.status, errBody), errBody);
    }
    return response;
  }

  async function apiJson(path, options) {
    const response = await api(path, options);
    if (response.status === 204) return null;
    return response.json();
  }

  /* Server-sent events over fetch (EventSource cannot POST). */
  async function* sseEvents(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseSse(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
      }
    }
    buffer += decoder.decode();
    const last = parseSse(buffer);
    if (last) yield last;
  }

  function parseSse(raw) {
    let event = "message";
    const data = [];
    for (const line of raw.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    const text = data.join("\n");
    try {
      return { event, data: JSON.parse(text) };
    } catch {
      return { event, data: text };
    }
  }

  /* --------------------------------------------------------------- markdown */

  const PURIFY_CONFIG = {
    USE_PROFILES: { html: true }, // no SVG or MathML
    FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "iframe", "frame", "object", "embed", "link", "meta", "base"],
    FORBID_ATTR: ["style", "id", "name", "srcset", "action", "formaction"],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  let purifyReady = false;
  function setupPurify() {
    if (purifyReady || !window.DOMPurify) return;
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A") {
        const href = node.getAttribute("href") || "";
        if (!href) return;
        if (href.startsWith("#")) return;
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer nofollow");
      }
    });
    purifyReady = true;
  }

  /* Untrusted markdown -> sanitized DOM in `el`. Without the libraries: plain text. */
  function renderMarkdown(el, text) {
    if (!window.marked || !window.DOMPurify || !window.DOMPurify.isSupported) {
      el.textContent = text;
      return;
    }
    setupPurify();
    const html = window.marked.parse(text || "", { gfm: true, breaks: true, async: false });
    el.replaceChildren(window.DOMPurify.sanitize(html, PURIFY_CONFIG));
  }

  /* ------------------------------------------------------------ DOM helpers */

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const ICONS = {
    edit: "M3 17.25V21h3.75L17.81 9.94l-3.75-3.75L3 17.25zM20.71 7.04a1 1 0 0 0 0-1.41l-2.34-2.34a1 1 0 0 0-1.41 0l-1.83 1.83 3.75 3.75 1.83-1.83z",
    trash: "M6 19a2 2 0 0 0 2 2h8a2 2 0 0 0 2-2V7H6v12zM19 4h-3.5l-1-1h-5l-1 1H5v2h14V4z",
    file: "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8l-6-6zm-1 7V3.5L18.5 9H13z",
  };

  function icon(name, size = 16) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", String(size));
    svg.setAttribute("height", String(size));
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  function nearBottom() {
    const t = els.thread;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 120;
  }

  function scrollToBottom(force = false) {
    if (force || nearBottom()) els.thread.scrollTop = els.thread.scrollHeight;
  }

  function showError(text) {
    els.error.replaceChildren(h("span", { class: "error-icon", "aria-hidden": "true", text: "!" }), h("span", { text }));
    els.error.hidden = false;
  }

  function hideError() {
    els.error.hidden = true;
    els.error.replaceChildren();
  }

  function formatDate(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
  }

  function autoresize() {
    els.input.style.height = "auto";
    els.input.style.height = `${Math.min(els.input.scrollHeight, 220)}px`;
  }

  /* ---------------------------------------------------------- conversations */

  function titleOf(conversation) {
    return (conversation && conversation.title && conversation.title.trim()) || UNTITLED;
  }

  async function refreshConversations() {
    if (!state.token) {
      state.conversations = [];
      renderConversationList();
      return;
    }
    const token = state.token;
    try {
      const body = await apiJson("/chat");
      if (state.token !== token) return; // forgotten (or replaced) meanwhile
      state.conversations = body.conversations || [];
    } catch (err) {
      if (state.token !== token) return;
      if (err.status === 401) {
        saveToken(null); // expired or from another server: start afresh
        state.conversations = [];
      } else {
        showError(`Could not load your conversations: ${err.message}`);
      }
    }
    renderConversationList();
    updateTitle();
  }

  function renderConversationList() {
    els.list.replaceChildren(...state.conversations.map(conversationItem));
    els.emptyList.hidden = state.conversations.length > 0;
  }

  function conversationItem(conversation) {
    const active = conversation.id === state.currentId;
    const title = titleOf(conversation);
    const open = h(
      "button",
      { type: "button", class: "open", title: `${title}\nUpdated ${formatDate(conversation.updated)}`, "aria-current": active ? "page" : null },
      h("span", { class: `title${conversation.title ? "" : " untitled"}`, text: title }),
    );
    open.addEventListener("click", () => openConversation(conversation.id));
    const rename = h("button", { type: "button", class: "icon-button rename", "aria-label": `Rename ${title}`, title: "Rename" }, icon("edit"));
    rename.addEventListener("click", () => startRename(item, conversation));
    const remove = h("button", { type: "button", class: "icon-button delete", "aria-label": `Delete ${title}`, title: "Delete" }, icon("trash"));
    remove.addEventListener("click", () => deleteConversation(conversation));
    const item = h("li", { class: `conversation${active ? " active" : ""}`, dataset: { id: conversation.id } }, open, h("span", { class: "actions" }, rename, remove));
    return item;
  }

  function startRename(item, conversation) {
    const input = h("input", { type: "text", class: "rename-input", maxlength: "200", "aria-label": "New title" });
    input.value = conversation.title || "";
    let settled = false;
    const finish = async (save) => {
      if (settled) return;
      settled = true;
      const title = input.value.trim();
      if (save && title && title !== conversation.title) {
        try {
          const updated = await apiJson(`/chat/${encodeURIComponent(conversation.id)}`, { method: "PATCH", json: { title } });
          Object.assign(conversation, updated);
        } catch (err) {
          showError(`Could not rename the conversation: ${err.message}`);
        }
      }
      renderConversationList();
      updateTitle();
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        event.preventDefault();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
    item.replaceChildren(input);
    item.classList.add("renaming");
    input.focus();
    input.select();
  }

  async function deleteConversation(conversation) {
    if (!window.confirm(`Delete “${titleOf(conversation)}”? This cannot be undone.`)) return;
    try {
      await api(`/chat/${encodeURIComponent(conversation.id)}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) {
        showError(`Could not delete the conversation: ${err.message}`);
        return;
      }
    }
    state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
    if (state.currentId === conversation.id) newChat();
    renderConversationList();
  }

  function updateTitle() {
    const current = state.conversations.find((c) => c.id === state.currentId);
    const title = state.currentId ? titleOf(current) : UNTITLED;
    els.title.textContent = title;
    document.title = state.currentId && current && current.title ? `${current.title} · Datamonkey Chat` : "Datamonkey Chat";
  }

  function setLocation(id) {
    const url = id ? `#c=${encodeURIComponent(id)}` : window.location.pathname;
    window.history.replaceState(null, "", url);
  }

  function locationConversation() {
    const match = /^#c=([^&]+)$/.exec(window.location.hash);
    return match ? decodeURIComponent(match[1]) : null;
  }

  function newChat() {
    state.currentId = null;
    state.openSeq += 1;
    els.messages.replaceChildren();
    els.welcome.hidden = false;
    hideError();
    setLocation(null);
    renderConversationList();
    updateTitle();
    closeSidebar();
    els.input.focus();
  }

  async function openConversation(id) {
    closeSidebar();
    hideError();
    const seq = ++state.openSeq;
    state.currentId = id;
    setLocation(id);
    renderConversationList();
    updateTitle();
    els.welcome.hidden = true;
    els.messages.replaceChildren(h("li", { class: "loading", text: "Loading…" }));
    let conversation;
    try {
      conversation = await apiJson(`/chat/${encodeURIComponent(id)}`);
    } catch (err) {
      if (seq !== state.openSeq) return;
      els.messages.replaceChildren();
      if (err.status === 404 || err.status === 403) {
        state.conversations = state.conversations.filter((c) => c.id !== id);
        newChat();
        showError("That conversation no longer exists.");
      } else {
        showError(`Could not open the conversation: ${err.message}`);
      }
      return;
    }
    if (seq !== state.openSeq) return;
    const known = state.conversations.find((c) => c.id === id);
    if (known) Object.assign(known, { title: conversation.title, updated: conversation.updated });
    updateTitle();
    els.messages.replaceChildren();
    for (const message of conversation.messages || []) appendStoredMessage(message);
    els.welcome.hidden = (conversation.messages || []).length > 0;
    scrollToBottom(true);
  }

  /* --------------------------------------------------------------- messages */

  function messageShell(role) {
    const content = h("div", { class: "content" });
    const tools = h("div", { class: "tools" });
    const body = h("div", { class: "bubble" }, content, tools);
    const avatar = h("div", { class: "avatar", "aria-hidden": "true", text: role === "user" ? "You" : "DM" });
    const li = h("li", { class: `message ${role}`, dataset: { role } }, avatar, body);
    return { li, content, tools, body, toolCalls: new Map() };
  }

  function appendStoredMessage(message) {
    const shell = messageShell(message.role === "user" ? "user" : "assistant");
    if (message.role === "user") shell.content.textContent = message.content;
    else renderMarkdown(shell.content, message.content);
    for (const event of message.tool_events || []) addToolEvent(shell, event);
    if (message.timestamp) shell.li.title = formatDate(message.timestamp);
    els.messages.append(shell.li);
    return shell;
  }

  function addToolEvent(shell, event) {
    if (!event || typeof event !== "object") return;
    const id = event.tool_call_id || `${event.tool_name}-${shell.toolCalls.size}`;
    let chip = shell.toolCalls.get(id);
    if (!chip) {
      chip = h("span", { class: "tool-chip pending", title: "Tool used by the assistant" }, h("span", { class: "tool-icon", "aria-hidden": "true", text: "⚙" }), h("span", { text: event.tool_name || "tool" }));
      shell.toolCalls.set(id, chip);
      shell.tools.append(chip);
    }
    if (event.type === "tool_result") {
      chip.classList.remove("pending");
      const jobId = findJobId(event.payload);
      if (event.tool_name === "start_analysis" && jobId) {
        addJobCard(shell, jobId, findMethod(event.payload));
      }
    }
  }

  function parsePayload(payload) {
    if (typeof payload === "string") {
      try {
        return JSON.parse(payload);
      } catch {
        return payload;
      }
    }
    return payload;
  }

  function findJobId(payload) {
    const value = parsePayload(payload);
    if (!value || typeof value !== "object") return null;
    if (typeof value.job_id === "string" || typeof value.job_id === "number") return String(value.job_id);
    if (value.job && typeof value.job === "object") return findJobId(value.job);
    return null;
  }

  function findMethod(payload) {
    const value = parsePayload(payload);
    if (!value || typeof value !== "object") return null;
    return value.method || (value.job && value.job.method) || null;
  }

  /* ------------------------------------------------------------------ send */

  function setStreaming(on) {
    els.send.hidden = on;
    els.stop.hidden = !on;
    els.app.classList.toggle("streaming", on);
  }

  function restoreInput(text) {
    if (!els.input.value.trim()) {
      els.input.value = text;
      autoresize();
    }
    els.input.focus();
  }

  async function send(text) {
    if (state.streaming || !text.trim()) return;
    hideError();
    els.input.value = "";
    autoresize();
    els.welcome.hidden = true;

    const user = messageShell("user");
    user.content.textContent = text;
    const reply = messageShell("assistant");
    reply.li.classList.add("pending");
    reply.content.append(h("span", { class: "typing", "aria-label": "The assistant is answering" }, h("i"), h("i"), h("i")));
    els.messages.append(user.li, reply.li);
    scrollToBottom(true);

    const controller = new AbortController();
    state.streaming = { controller };
    setStreaming(true);
    let conversationId = state.currentId;
    let replyText = "";
    let rendered = false;
    let frame = 0;
    const render = () => {
      frame = 0;
      const stick = nearBottom();
      renderMarkdown(reply.content, replyText);
      if (stick) scrollToBottom(true);
    };
    let stored = null;
    try {
      if (!conversationId) {
        const conversation = await apiJson("/chat", { method: "POST", json: {}, signal: controller.signal });
        conversationId = conversation.id;
        state.conversations.unshift(conversation);
        if (state.currentId === null) {
          state.currentId = conversationId;
          setLocation(conversationId);
        }
        renderConversationList();
        updateTitle();
      }
      state.streaming.conversationId = conversationId;
      const response = await api(`/chat/${encodeURIComponent(conversationId)}/messages`, {
        method: "POST",
        json: { message: text },
        accept: "text/event-stream",
        signal: controller.signal,
      });
      if (!(response.headers.get("content-type") || "").includes("text/event-stream")) {
        stored = (await response.json()).message; // a server without streaming
      } else {
        for await (const { event, data } of sseEvents(response)) {
          if (event === "delta" && data && typeof data.text === "string") {
            if (!rendered) {
              rendered = true;
              reply.li.classList.remove("pending");
            }
            replyText += data.text;
            if (!frame) frame = window.requestAnimationFrame(render);
          } else if (event === "tool_call" || event === "tool_result") {
            addToolEvent(reply, data);
            scrollToBottom();
          } else if (event === "done") {
            stored = data && data.message;
          } else if (event === "error") {
            const status = (data && data.status) || 500;
            throw new ApiError(status, describeError(status, data), data);
          }
        }
      }
      if (!stored) throw new ApiError(0, "the reply ended before it was complete", null);
      if (frame) window.cancelAnimationFrame(frame);
      reply.li.classList.remove("pending");
      renderMarkdown(reply.content, stored.content);
      if (stored.tool_events) for (const event of stored.tool_events) addToolEvent(reply, event);
      if (stored.timestamp) reply.li.title = formatDate(stored.timestamp);
      scrollToBottom();
    } catch (err) {
      if (frame) window.cancelAnimationFrame(frame);
      if (controller.signal.aborted) {
        // Stopped: the server keeps no half turn, so say so and give the text back.
        if (replyText) render();
        else reply.content.replaceChildren();
        reply.li.classList.remove("pending");
        user.li.classList.add("unsaved");
        reply.li.classList.add("unsaved", "stopped");
        reply.body.append(h("p", { class: "stopped-note", text: "Stopped. This exchange was not saved; your message is back in the box." }));
        restoreInput(text);
      } else {
        user.li.remove();
        reply.li.remove();
        if (!els.messages.children.length && !state.currentId) els.welcome.hidden = false;
        if (err.status === 401) saveToken(null);
        showError(`The reply failed: ${err.message}. Your message is still in the box; press Enter to retry.`);
        restoreInput(text);
      }
    } finally {
      state.streaming = null;
      setStreaming(false);
    }
    if (stored) {
      await refreshConversations();
      const current = state.conversations.find((c) => c.id === conversationId);
      if (current && !current.title) {
        // Titles arrive shortly after the first reply.
        for (const delay of [1200, 2500, 5000]) {
          await new Promise((resolve) => window.setTimeout(resolve, delay));
          await refreshConversations();
          const again = state.conversations.find((c) => c.id === conversationId);
          if (!again || again.title) break;
        }
      }
    }
  }

  /* --------------------------------------------------------------- job cards */

  function addJobCard(shell, jobId, method) {
    if (els.messages.querySelector(`.job-card[data-job-id="${CSS.escape(jobId)}"]`)) return;
    const status = h("span", { class: "status-pill queued", text: "queued" });
    const bar = h("div", { class: "progress-bar" });
    const progress = h("div", { class: "progress" }, bar);
    const detail = h("p", { class: "job-detail", text: "Waiting for the job’s status…" });
    const summary = h("div", { class: "job-summary" });
    const plot = h("div", { class: "job-plot" });
    const card = h(
      "div",
      { class: "job-card", dataset: { jobId, testid: "job-card" } },
      h("div", { class: "job-head" }, h("span", { class: "method", text: (method || "analysis").toString().toUpperCase() }), h("span", { class: "job-id", text: `job ${jobId}` }), status),
      progress,
      detail,
      summary,
      plot,
    );
    shell.body.append(card);
    pollJob({ card, status, bar, progress, detail, summary, plot, method }, jobId);
  }

  function progressOf(job) {
    const p = job.progress;
    if (typeof p === "number" && Number.isFinite(p)) return { fraction: p > 1 ? p / 100 : p, text: "" };
    if (typeof p === "string") {
      const m = /(\d+)\s*\/\s*(\d+)/.exec(p);
      return { fraction: m && Number(m[2]) ? Number(m[1]) / Number(m[2]) : null, text: p };
    }
    if (p && typeof p === "object") {
      let fraction = null;
      if (typeof p.fraction === "number") fraction = p.fraction;
      else if (typeof p.percent === "number") fraction = p.percent / 100;
      else if (typeof p.current === "number" && p.total) fraction = p.current / p.total;
      return { fraction, text: p.stage || p.message || p.text || "" };
    }
    return { fraction: null, text: "" };
  }

  function updateJobCard(view, job) {
    const status = job.status || "queued";
    view.status.textContent = status;
    view.status.className = `status-pill ${status}`;
    view.card.dataset.status = status;
    const { fraction, text } = progressOf(job);
    if (status === "completed") {
      view.progress.hidden = true;
      view.detail.textContent = job.summary ? "" : "Finished.";
      view.detail.hidden = Boolean(job.summary);
      if (job.method && !view.method) view.card.querySelector(".method").textContent = job.method.toUpperCase();
      showJobResult(view, job);
    } else if (status === "error") {
      view.progress.hidden = true;
      view.detail.textContent = job.error_message ? `Failed: ${job.error_message}` : "The job failed.";
      view.detail.classList.add("failed");
    } else {
      view.progress.hidden = false;
      view.progress.classList.toggle("indeterminate", fraction === null);
      if (fraction !== null) view.bar.style.width = `${Math.max(2, Math.min(100, fraction * 100)).toFixed(1)}%`;
      view.detail.textContent = text || (status === "running" ? "Running…" : "Queued…");
    }
  }

  async function pollJob(view, jobId) {
    let delay = POLL_MIN_MS;
    let seen = false;
    while (view.card.isConnected || !seen) {
      try {
        const job = await apiJson(`/jobs/${encodeURIComponent(jobId)}`);
        seen = true;
        updateJobCard(view, job);
        if (job.status === "completed" || job.status === "error") return;
      } catch (err) {
        if (err.status === 404 || err.status === 403 || err.status === 401) {
          view.progress.hidden = true;
          view.status.textContent = "unknown";
          view.status.className = "status-pill unknown";
          view.detail.textContent = "This server does not report this job’s status (yet). Ask the assistant “is my job done?”.";
          return;
        }
        view.detail.textContent = `Checking the job’s status failed (${err.message}); retrying…`;
      }
      seen = true;
      await new Promise((resolve) => window.setTimeout(resolve, delay));
      delay = Math.min(Math.round(delay * 1.4), POLL_MAX_MS);
    }
  }

  function showJobResult(view, job) {
    const summary = job.summary && typeof job.summary === "object" ? job.summary : null;
    if (!summary) return;
    if (summary.summary_text) renderMarkdown(view.summary, String(summary.summary_text));
    legendColumns = view.plot.clientWidth && view.plot.clientWidth < 480 ? 1 : 3;
    const specs = Array.isArray(summary.plots) ? summary.plots.filter((s) => s && typeof s === "object") : [];
    if (specs.length) {
      view.plot.replaceChildren();
      for (const spec of specs) {
        const box = h("div", { class: "job-plot-item", dataset: { testid: "job-plot" } });
        view.plot.append(box);
        drawPlot(box, { ...spec, config: { ...chartConfig(), ...(spec.config || {}) } });
      }
    } else {
      const spec = plotSpec((job.method || view.method || "").toLowerCase(), summary);
      if (spec) drawPlot(view.plot, spec);
    }
    showDownloads(view, job);
  }

  /* Downloads need the session header, so they are fetched and handed over as a blob. */
  function showDownloads(view, job) {
    if (view.card.querySelector(".job-downloads")) return;
    const jobId = job.id || job.job_id;
    const link = (file, label) => {
      const a = h("a", { href: "#", class: "download", text: label, dataset: { testid: `download-${file}` } });
      a.addEventListener("click", async (event) => {
        event.preventDefault();
        try {
          const response = await api(`/jobs/${encodeURIComponent(jobId)}/${file}`, { accept: "*/*" });
          const url = URL.createObjectURL(await response.blob());
          const save = h("a", { href: url, download: `${job.method || "job"}-${jobId}-${file}` });
          document.body.append(save);
          save.click();
          save.remove();
          window.setTimeout(() => URL.revokeObjectURL(url), 10000);
        } catch (err) {
          a.textContent = `${label} (failed: ${err.message})`;
        }
      });
      return a;
    };
    view.card.append(h("p", { class: "job-downloads" }, "Download: ", link("table.csv", "table (CSV)"), " · ", link("result.json", "HyPhy JSON")));
  }

  /* ------------------------------------------------------------------- plots */

  const COLORS = { positive: "#d1495b", negative: "#2e86ab", neutral: "#c3cad1" };

  function num(value) {
    const n = typeof value === "number" ? value : Number(value);
    return Number.isFinite(n) ? n : null;
  }

  /* A Vega-Lite spec for a job summary, or null when it has nothing to draw. */
  function plotSpec(method, summary) {
    if (Array.isArray(summary.sites) && summary.sites.length) return sitesSpec(method, summary);
    if (Array.isArray(summary.branches) && summary.branches.length) return branchesSpec(summary);
    return null;
  }

  let legendColumns = 3; // set per chart from its container's width (narrow: one per row)

  function sitesSpec(method, summary) {
    const bayesian = method === "fubar" || summary.sites.some((s) => s.posterior !== undefined && s.p === undefined);
    const threshold = num(summary.threshold) ?? (bayesian ? 0.9 : 0.1);
    const labels = bayesian
      ? { positive: `Positive (posterior ≥ ${threshold})`, negative: `Negative (posterior ≥ ${threshold})`, neutral: "Not significant" }
      : { positive: `Positive (p ≤ ${threshold})`, negative: `Negative (p ≤ ${threshold})`, neutral: "Not significant" };
    const values = [];
    for (const s of summary.sites) {
      const site = num(s.site);
      const alpha = num(s.alpha);
      const beta = num(s.beta);
      if (site === null) continue;
      const score = bayesian ? num(s.posterior) : num(s.p);
      let cls = "neutral";
      if (bayesian) {
        if (score !== null && score >= threshold) cls = "positive";
        else if (num(s.posterior_negative) !== null && num(s.posterior_negative) >= threshold) cls = "negative";
      } else if (score !== null && score <= threshold) {
        cls = beta !== null && alpha !== null && beta < alpha ? "negative" : "positive";
      }
      values.push({ site, site_end: site + 1, alpha, beta, diff: alpha !== null && beta !== null ? beta - alpha : null, score, cls: labels[cls] });
    }
    if (!values.length) return null;
    const haveRates = values.every((v) => v.diff !== null);
    const scoreTitle = bayesian ? "Posterior P(β > α)" : "p-value";
    const domain = [labels.positive, labels.negative, labels.neutral];
    const range = [COLORS.positive, COLORS.negative, COLORS.neutral];
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      description: `${method.toUpperCase()} per-site results`,
      width: "container",
      height: 170,
      data: { values },
      mark: { type: "bar", tooltip: true },
      encoding: {
        x: {
          field: "site",
          type: "quantitative",
          title: "Codon site",
          scale: { domain: [Math.min(...values.map((v) => v.site)), Math.max(...values.map((v) => v.site_end))], nice: false, zero: false },
          axis: { tickMinStep: 1, format: "d", tickCount: 12 },
        },
        x2: { field: "site_end" },
        y: haveRates
          ? { field: "diff", type: "quantitative", title: "β − α (dN − dS)" }
          : { field: "score", type: "quantitative", title: scoreTitle },
        y2: { datum: 0 },
        color: { field: "cls", type: "nominal", title: null, scale: { domain, range }, legend: { orient: "top", direction: "horizontal", columns: legendColumns } },
        tooltip: [
          { field: "site", type: "quantitative", title: "Site" },
          { field: "alpha", type: "quantitative", title: "α (dS)", format: ".3f" },
          { field: "beta", type: "quantitative", title: "β (dN)", format: ".3f" },
          { field: "score", type: "quantitative", title: scoreTitle, format: ".3g" },
        ],
      },
      config: chartConfig(),
    };
  }

  function branchesSpec(summary) {
    const threshold = num(summary.threshold) ?? 0.05;
    const values = summary.branches
      .map((b) => {
        const p = num(b.corrected_p) ?? num(b.p);
        return { name: String(b.name), p, uncorrected: num(b.p), cls: p !== null && p <= threshold ? `Selected (corrected p ≤ ${threshold})` : "Not significant" };
      })
      .filter((v) => v.p !== null)
      .sort((a, b) => a.p - b.p)
      .slice(0, 60);
    if (!values.length) return null;
    return {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      description: "aBSREL branch tests",
      width: "container",
      autosize: { type: "fit-x", contains: "padding" },
      height: { step: 16 },
      data: { values },
      layer: [
        {
          mark: { type: "bar", tooltip: true },
          encoding: {
            y: { field: "name", type: "nominal", sort: { field: "p" }, title: null },
            x: { field: "p", type: "quantitative", scale: { domain: [0, 1] }, title: "Corrected p-value", axis: { values: [0, 0.05, 0.25, 0.5, 0.75, 1], format: "~g" } },
            color: {
              field: "cls",
              type: "nominal",
              title: null,
              scale: { domain: [`Selected (corrected p ≤ ${threshold})`, "Not significant"], range: [COLORS.positive, COLORS.neutral] },
              legend: { orient: "top", direction: "horizontal", columns: legendColumns },
            },
            tooltip: [
              { field: "name", title: "Branch" },
              { field: "p", type: "quantitative", title: "Corrected p", format: ".3g" },
              { field: "uncorrected", type: "quantitative", title: "Uncorrected p", format: ".3g" },
            ],
          },
        },
        { mark: { type: "rule", strokeDash: [4, 3], color: "#555" }, encoding: { x: { datum: threshold } } },
      ],
      config: chartConfig(),
    };
  }

  function chartConfig() {
    return {
      font: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
      view: { stroke: null },
      axis: { labelColor: "#4a5560", titleColor: "#2b3440", gridColor: "#eef1f4", domainColor: "#c3cad1", tickColor: "#c3cad1" },
      legend: { labelColor: "#2b3440" },
    };
  }

  async function drawPlot(container, spec) {
    if (!window.vegaEmbed || !window.vega || !window.vega.expressionInterpreter) {
      container.replaceChildren(h("p", { class: "muted", text: "(Charts are unavailable in this browser.)" }));
      return;
    }
    const stick = nearBottom();
    try {
      await window.vegaEmbed(container, spec, {
        renderer: "svg",
        actions: false,
        defaultStyle: false, // no injected <style>: the CSP allows only our stylesheet
        tooltip: { disableDefaultStyle: true, theme: "custom" },
        ast: true, // CSP-safe: interpret expressions instead of compiling them with eval
        expr: window.vega.expressionInterpreter,
      });
      if (stick) scrollToBottom(true);
    } catch (err) {
      container.replaceChildren(h("p", { class: "muted", text: `(Could not draw the chart: ${err.message})` }));
    }
  }

  /* ---------------------------------------------------------------- uploads */

  function note(className, ...children) {
    els.welcome.hidden = true;
    const li = h("li", { class: `note ${className}` }, ...children);
    els.messages.append(li);
    scrollToBottom(true);
    return li;
  }

  function describeProblem(problem) {
    if (typeof problem === "string") return problem;
    if (!problem || typeof problem !== "object") return String(problem);
    const where = [];
    if (problem.sequence) where.push(`sequence ${problem.sequence}`);
    if (problem.position !== undefined && problem.position !== null) where.push(`position ${problem.position}`);
    if (problem.line !== undefined && problem.line !== null) where.push(`line ${problem.line}`);
    const text = problem.message || problem.problem || problem.detail || JSON.stringify(problem);
    return where.length ? `${where.join(", ")}: ${text}` : text;
  }

  function datasetFacts(dataset) {
    const facts = [];
    const pick = (...keys) => keys.map((k) => dataset[k]).find((v) => v !== undefined && v !== null);
    const sequences = pick("sequences", "num_sequences", "sequence_count", "n_sequences");
    const sites = pick("sites", "num_sites", "length", "n_sites");
    const codons = pick("codons", "num_codons", "n_codons");
    const type = pick("type", "alphabet", "data_type");
    if (sequences !== undefined) facts.push(`${sequences} sequences`);
    if (sites !== undefined) facts.push(`${sites} sites`);
    if (codons !== undefined) facts.push(`${codons} codons`);
    if (typeof type === "string") facts.push(type);
    return facts.join(" · ");
  }

  async function upload(file) {
    if (!file) return;
    hideError();
    const pending = note("upload", h("span", { class: "spinner", "aria-hidden": "true" }), h("span", { text: `Uploading ${file.name}…` }));
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("meta", JSON.stringify({ name: file.name }));
    try {
      const dataset = await apiJson("/datasets", { method: "POST", body: form });
      const id = String(dataset.id ?? dataset.dataset_id ?? "");
      const name = dataset.name || file.name;
      const actions = h("div", { class: "dataset-actions" });
      for (const method of ["FEL", "FUBAR", "aBSREL", "MEME"]) {
        const button = h("button", { type: "button", class: "chip-button", text: `Run ${method}` });
        button.addEventListener("click", () => {
          els.input.value = `Run ${method} on dataset ${id}`;
          autoresize();
          els.input.focus();
        });
        actions.append(button);
      }
      pending.replaceWith(
        note(
          "dataset",
          h("div", { class: "dataset-head" }, h("span", { class: "file-icon" }, icon("file", 18)), h("strong", { text: name }), h("span", { class: "muted", text: ` dataset ${id}` })),
          h("p", { class: "facts", text: datasetFacts(dataset) || "Uploaded." }),
          actions,
        ),
      );
      refreshDatasets();
      if (!state.conversations.length) refreshConversations();
    } catch (err) {
      let children;
      if (err.status === 404 || err.status === 405) {
        children = [h("strong", { text: "Uploads are not available on this server yet." })];
      } else if (err.status === 422 && err.body && Array.isArray(err.body.problems)) {
        children = [
          h("strong", { text: `${file.name} was not accepted:` }),
          h("ul", {}, err.body.problems.map((p) => h("li", { text: describeProblem(p) }))),
        ];
      } else {
        children = [h("strong", { text: `Uploading ${file.name} failed: ` }), h("span", { text: err.message })];
      }
      pending.replaceWith(note("upload-failed", ...children));
    }
  }

  async function refreshDatasets() {
    if (!state.token) {
      els.datasetsSection.hidden = true;
      return;
    }
    const token = state.token;
    try {
      const body = await apiJson("/datasets");
      if (state.token !== token) return;
      const items = Array.isArray(body) ? body : body.datasets || [];
      els.datasetList.replaceChildren(
        ...items.map((d) => h("li", { title: `dataset ${d.id}` }, h("span", { class: "name", text: d.name || d.id }), h("span", { class: "muted", text: datasetFacts(d) }))),
      );
      els.datasetsSection.hidden = items.length === 0;
    } catch {
      els.datasetsSection.hidden = true; // endpoint not there (yet) or no session
    }
  }

  /* ------------------------------------------------------------------- wiring */

  function openSidebar() {
    els.app.classList.add("sidebar-open");
    els.scrim.hidden = false;
    els.menu.setAttribute("aria-expanded", "true");
  }

  function closeSidebar() {
    els.app.classList.remove("sidebar-open");
    els.scrim.hidden = true;
    els.menu.setAttribute("aria-expanded", "false");
  }

  function forgetMe() {
    const ok = window.confirm(
      "Forget this browser's session? Your conversations stay on the server but will no longer be reachable from this browser.",
    );
    if (!ok) return;
    if (state.streaming) state.streaming.controller.abort();
    saveToken(null);
    state.conversations = [];
    els.datasetsSection.hidden = true;
    els.datasetList.replaceChildren();
    newChat();
  }

  function submit() {
    const text = els.input.value;
    if (text.trim()) send(text);
  }

  function wire() {
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit();
    });
    els.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
    els.input.addEventListener("input", autoresize);
    els.stop.addEventListener("click", () => state.streaming && state.streaming.controller.abort());
    els.newChat.addEventListener("click", newChat);
    els.forget.addEventListener("click", forgetMe);
    els.menu.addEventListener("click", () => (els.app.classList.contains("sidebar-open") ? closeSidebar() : openSidebar()));
    els.scrim.addEventListener("click", closeSidebar);
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape") closeSidebar();
    });
    for (const button of document.querySelectorAll(".suggestion")) {
      button.addEventListener("click", () => send(button.textContent.trim()));
    }
    els.attach.addEventListener("click", () => els.file.click());
    els.file.addEventListener("change", () => {
      const [file] = els.file.files;
      els.file.value = "";
      upload(file);
    });
    let dragDepth = 0;
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth += 1;
      els.drop.hidden = false;
    });
    window.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("dragleave", () => {
      dragDepth = Math.max(0, dragDepth - 1);
      if (!dragDepth) els.drop.hidden = true;
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      dragDepth = 0;
      els.drop.hidden = true;
      for (const file of event.dataTransfer.files) upload(file);
    });
  }

  async function start() {
    wire();
    autoresize();
    await refreshConversations();
    refreshDatasets();
    const wanted = locationConversation();
    if (wanted && state.conversations.some((c) => c.id === wanted)) await openConversation(wanted);
    else setLocation(null);
    document.body.dataset.ready = "true"; // for tests and for people reading the DOM
  }

  start();
})();
