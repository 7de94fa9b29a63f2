/* HTTP to this origin's API: the session token in a header, errors as ApiError. */

import { API, saveToken, state } from "./state.js";

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

export function describeError(status, body) {
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

export async function api(path, { method = "GET", json, body, accept = "application/json", signal } = {}) {
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

export async function apiJson(path, options) {
  const response = await api(path, options);
  if (response.status === 204) return null;
  return response.json();
}
