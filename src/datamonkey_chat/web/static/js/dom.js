/* DOM helpers and sanitized markdown. Model text is untrusted: it is rendered with marked
 * and then sanitized with DOMPurify before it touches the DOM. */

import { els } from "./state.js";

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
export function renderMarkdown(el, text) {
  if (!window.marked || !window.DOMPurify || !window.DOMPurify.isSupported) {
    el.textContent = text;
    return;
  }
  setupPurify();
  const html = window.marked.parse(text || "", { gfm: true, breaks: true, async: false });
  el.replaceChildren(window.DOMPurify.sanitize(html, PURIFY_CONFIG));
}


export function h(tag, attrs = {}, ...children) {
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

export function icon(name, size = 16) {
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

export function nearBottom() {
  const t = els.thread;
  return t.scrollHeight - t.scrollTop - t.clientHeight < 120;
}

export function scrollToBottom(force = false) {
  if (force || nearBottom()) els.thread.scrollTop = els.thread.scrollHeight;
}

export function showError(text) {
  els.error.replaceChildren(h("span", { class: "error-icon", "aria-hidden": "true", text: "!" }), h("span", { text }));
  els.error.hidden = false;
}

export function hideError() {
  els.error.hidden = true;
  els.error.replaceChildren();
}

export function formatDate(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleString();
}

export function autoresize() {
  els.input.style.height = "auto";
  els.input.style.height = `${Math.min(els.input.scrollHeight, 220)}px`;
}

export function openSidebar() {
  els.app.classList.add("sidebar-open");
  els.scrim.hidden = false;
  els.menu.setAttribute("aria-expanded", "true");
}

export function closeSidebar() {
  els.app.classList.remove("sidebar-open");
  els.scrim.hidden = true;
  els.menu.setAttribute("aria-expanded", "false");
}
