/* Datamonkey Chat: the single page. Plain browser JavaScript modules, no build step.
 *
 * Talks only to this origin's /api/v1. No inline scripts or handlers anywhere, so the page
 * runs under a strict Content-Security-Policy (see api/routes/web.py). Modules: state (shared
 * state, token), api, sse, dom (helpers, markdown), conversations (list, opening, paging),
 * messages (thread, send), jobs (job cards), plots, uploads; this one wires them together.
 */

import {
  loadMoreConversations,
  locationConversation,
  newChat,
  onListScroll,
  onThreadScroll,
  openConversation,
  refreshConversations,
  setLocation,
} from "./js/conversations.js";
import { api } from "./js/api.js";
import { autoresize, closeSidebar, openSidebar } from "./js/dom.js";
import { send } from "./js/messages.js";
import { els, saveToken, state } from "./js/state.js";
import { refreshDatasets, upload } from "./js/uploads.js";

function forgetMe() {
  const ok = window.confirm(
    "Forget this browser's session? Your conversations stay on the server but will no longer be reachable from this browser.",
  );
  if (!ok) return;
  if (state.streaming) state.streaming.controller.abort();
  if (state.token) api("/session", { method: "DELETE" }).catch(() => {}); // ends it server-side
  saveToken(null);
  state.conversations = [];
  state.conversationsCursor = null;
  state.conversationPages = 0;
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
  els.thread.addEventListener("scroll", onThreadScroll, { passive: true });
  els.list.parentElement.addEventListener("scroll", onListScroll, { passive: true });
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
  // The conversation in the address may be on a later page of the list.
  for (let pages = 0; wanted && pages < 20 && !state.conversations.some((c) => c.id === wanted); pages += 1) {
    if (!(await loadMoreConversations())) break;
  }
  if (wanted && state.conversations.some((c) => c.id === wanted)) await openConversation(wanted);
  else setLocation(null);
  document.body.dataset.ready = "true"; // for tests and for people reading the DOM
}

start();
