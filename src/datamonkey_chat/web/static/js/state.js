/* Shared page state: the elements, the session token and what is open. */

export const API = "/api/v1";
export const UNTITLED = "New conversation";
const TOKEN_KEY = "datamonkey-chat.token";

const $ = (id) => document.getElementById(id);
export const els = {
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

export const state = {
  token: readToken(),
  conversations: [],
  conversationsCursor: null, // next_cursor of the conversation list (null: all loaded)
  conversationPages: 0, // pages of the list loaded so far
  loadingConversations: false,
  currentId: null,
  olderCursor: null, // next_cursor of the open conversation's oldest loaded page
  loadingOlder: false,
  streaming: null, // {controller, conversationId}
  openSeq: 0, // guards against out-of-order conversation loads
};

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: the session lasts as long as the page
  }
}

export function saveToken(token) {
  state.token = token;
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled */
  }
}
