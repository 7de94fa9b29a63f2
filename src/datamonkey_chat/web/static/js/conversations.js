/* The conversation list (paged) and opening a conversation at its newest page. */

import { api, apiJson } from "./api.js";
import { closeSidebar, formatDate, h, hideError, icon, scrollToBottom, showError } from "./dom.js";
import { appendStoredMessage, storedMessageItem } from "./messages.js";
import { UNTITLED, els, saveToken, state } from "./state.js";

export const PAGE_SIZE = 50; // messages per page, and conversations per list page
const NEAR_TOP_PX = 200; // load older messages when the thread is scrolled this close to the top
const NEAR_END_PX = 120; // load more conversations this close to the list's end

function titleOf(conversation) {
  return (conversation && conversation.title && conversation.title.trim()) || UNTITLED;
}

export async function refreshConversations() {
  if (!state.token) {
    state.conversations = [];
    renderConversationList();
    return;
  }
  const token = state.token;
  try {
    // The newest page. Older pages already loaded stay below it; a conversation that moved
    // up shows once, in its new place.
    const body = await apiJson(`/chat?limit=${PAGE_SIZE}`);
    if (state.token !== token) return; // forgotten (or replaced) meanwhile
    const first = body.conversations || [];
    if (state.conversationPages > 1) {
      const seen = new Set(first.map((c) => c.id));
      state.conversations = first.concat(state.conversations.filter((c) => !seen.has(c.id)));
    } else {
      state.conversations = first;
      state.conversationsCursor = body.next_cursor || null;
      state.conversationPages = 1;
    }
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

/* The next page of the conversation list, when the list is scrolled to its end. */
export async function loadMoreConversations() {
  if (!state.conversationsCursor || state.loadingConversations || !state.token) return false;
  state.loadingConversations = true;
  const token = state.token;
  try {
    const body = await apiJson(`/chat?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(state.conversationsCursor)}`);
    if (state.token !== token) return false;
    const seen = new Set(state.conversations.map((c) => c.id));
    state.conversations = state.conversations.concat((body.conversations || []).filter((c) => !seen.has(c.id)));
    state.conversationsCursor = body.next_cursor || null;
    state.conversationPages += 1;
    renderConversationList();
    return true;
  } catch (err) {
    showError(`Could not load more conversations: ${err.message}`);
    return false;
  } finally {
    state.loadingConversations = false;
  }
}

export function onListScroll() {
  const list = els.list.parentElement;
  if (list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_END_PX) loadMoreConversations();
}

export function renderConversationList() {
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

export function updateTitle() {
  const current = state.conversations.find((c) => c.id === state.currentId);
  const title = state.currentId ? titleOf(current) : UNTITLED;
  els.title.textContent = title;
  document.title = state.currentId && current && current.title ? `${current.title} · Datamonkey Chat` : "Datamonkey Chat";
}

export function setLocation(id) {
  const url = id ? `#c=${encodeURIComponent(id)}` : window.location.pathname;
  window.history.replaceState(null, "", url);
}

export function locationConversation() {
  const match = /^#c=([^&]+)$/.exec(window.location.hash);
  return match ? decodeURIComponent(match[1]) : null;
}

export function newChat() {
  state.currentId = null;
  state.olderCursor = null;
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

export async function openConversation(id) {
  closeSidebar();
  hideError();
  const seq = ++state.openSeq;
  state.currentId = id;
  state.olderCursor = null;
  setLocation(id);
  renderConversationList();
  updateTitle();
  els.welcome.hidden = true;
  els.messages.replaceChildren(h("li", { class: "loading", text: "Loading…" }));
  let page;
  try {
    page = await apiJson(`/chat/${encodeURIComponent(id)}/messages?limit=${PAGE_SIZE}`);
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
  updateTitle();
  els.messages.replaceChildren();
  const messages = page.messages || [];
  for (const message of messages) appendStoredMessage(message);
  state.olderCursor = page.next_cursor || null;
  els.welcome.hidden = messages.length > 0;
  els.thread.scrollTo({ top: els.thread.scrollHeight, behavior: "instant" }); // open at the end
  lastScrollTop = els.thread.scrollTop;
  // A short first page may not fill the thread: no scrolling would ever load the rest.
  while (state.olderCursor && seq === state.openSeq && els.thread.scrollHeight <= els.thread.clientHeight) {
    if (!(await loadOlderMessages())) break;
  }
}

/* The page of messages before the oldest shown, kept in place on the screen. */
export async function loadOlderMessages() {
  const cursor = state.olderCursor;
  const id = state.currentId;
  if (!cursor || !id || state.loadingOlder) return false;
  state.loadingOlder = true;
  const seq = state.openSeq;
  const marker = h("li", { class: "loading older", text: "Loading older messages…", dataset: { testid: "loading-older" } });
  els.messages.prepend(marker);
  try {
    const page = await apiJson(`/chat/${encodeURIComponent(id)}/messages?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(cursor)}`);
    if (seq !== state.openSeq) return false;
    const thread = els.thread;
    const fromBottom = thread.scrollHeight - thread.scrollTop;
    marker.replaceWith(...(page.messages || []).map(storedMessageItem));
    // What was on screen stays there (at once: the thread otherwise scrolls smoothly).
    thread.scrollTo({ top: thread.scrollHeight - fromBottom, behavior: "instant" });
    lastScrollTop = thread.scrollTop;
    state.olderCursor = page.next_cursor || null;
    return true;
  } catch (err) {
    if (seq === state.openSeq) showError(`Could not load older messages: ${err.message}`);
    return false;
  } finally {
    marker.remove();
    state.loadingOlder = false;
  }
}

let lastScrollTop = 0;

/* Older messages load when the reader scrolls up near the top (not while the thread glides
 * down to its newest message after opening). */
export function onThreadScroll() {
  const top = els.thread.scrollTop;
  const upward = top < lastScrollTop;
  lastScrollTop = top;
  if (upward && state.olderCursor && top < NEAR_TOP_PX) loadOlderMessages();
}
