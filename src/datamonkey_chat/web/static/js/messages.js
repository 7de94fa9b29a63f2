/* The thread: stored messages and tool events, and sending with a streamed reply. */

import { ApiError, api, apiJson, describeError } from "./api.js";
import { refreshConversations, renderConversationList, setLocation, updateTitle } from "./conversations.js";
import { autoresize, formatDate, h, hideError, nearBottom, renderMarkdown, scrollToBottom, showError } from "./dom.js";
import { addJobCard } from "./jobs.js";
import { sseEvents } from "./sse.js";
import { els, saveToken, state } from "./state.js";

export function messageShell(role) {
  const content = h("div", { class: "content" });
  const tools = h("div", { class: "tools" });
  const body = h("div", { class: "bubble" }, content, tools);
  const avatar = h("div", { class: "avatar", "aria-hidden": "true", text: role === "user" ? "You" : "DM" });
  const li = h("li", { class: `message ${role}`, dataset: { role } }, avatar, body);
  return { li, content, tools, body, toolCalls: new Map() };
}

/* A stored message as a list item (job cards included), not yet in the thread. */
export function storedMessageItem(message) {
  const shell = messageShell(message.role === "user" ? "user" : "assistant");
  if (message.role === "user") shell.content.textContent = message.content;
  else renderMarkdown(shell.content, message.content);
  for (const event of message.tool_events || []) addToolEvent(shell, event);
  if (message.timestamp) shell.li.title = formatDate(message.timestamp);
  if (message.id !== undefined) shell.li.dataset.messageId = String(message.id);
  return shell.li;
}

export function appendStoredMessage(message) {
  els.messages.append(storedMessageItem(message));
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

export async function send(text) {
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
