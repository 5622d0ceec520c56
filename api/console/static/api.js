// The HTTP API as the page uses it: the key, JSON requests, errors as the API words them,
// and a conversation's Server-Sent Events read with fetch (EventSource cannot send the
// Authorization header, and a key in the URL would end up in logs).

const KEY_NAME = "cpa-planner.api-key";

/**
 * Add the dialog that asks for the API key to the page: the same on every page of the
 * console (`#key-dialog`, `#key-form`, `#key-input`, `#key-error`), with a Cancel button
 * (`#key-cancel`) on a page that can go on without a key. Written here once, not in each
 * page's HTML.
 */
export function addKeyDialog({ cancel = false } = {}) {
  const dialog = document.createElement("dialog");
  dialog.id = "key-dialog";
  dialog.setAttribute("aria-labelledby", "key-title");
  dialog.innerHTML = `
    <form id="key-form" method="dialog">
      <h2 id="key-title">API key</h2>
      <p>This server needs an API key (<code>CPA_API_KEYS</code>). It is kept for this tab
        only, and sent with every request to this server.</p>
      <label for="key-input">API key</label>
      <input id="key-input" type="password" required autocomplete="off">
      <p id="key-error" class="key-error" role="alert"></p>
      <div class="buttons">
        <button type="submit" value="ok">Use this key</button>
      </div>
    </form>`;
  if (cancel) {
    const button = document.createElement("button");
    Object.assign(button, { type: "button", id: "key-cancel", className: "secondary" });
    button.textContent = "Cancel";
    dialog.querySelector(".buttons").append(button);
  }
  document.body.append(dialog);
  return dialog;
}

/** An error answer of the API: `message` is the API's own `error.message`. */
export class ApiError extends Error {
  constructor(status, code, message, fields = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

async function errorOf(response) {
  let error = null;
  try {
    error = (await response.json()).error;
  } catch {
    // Not our JSON error body (a proxy in between): say what we know.
  }
  return new ApiError(
    response.status,
    error?.code ?? "http_error",
    error?.message ?? `${response.status} ${response.statusText}`,
    error?.fields ?? [],
  );
}

export class Api {
  /** `root` is the URL the API's paths (`v1/...`) are relative to. */
  constructor(root) {
    this.root = root;
  }

  /** The key is kept for this tab only: sessionStorage, never localStorage or a cookie. */
  get key() {
    return sessionStorage.getItem(KEY_NAME);
  }

  set key(value) {
    if (value) sessionStorage.setItem(KEY_NAME, value);
    else sessionStorage.removeItem(KEY_NAME);
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    return headers;
  }

  url(path, params = {}) {
    const url = new URL(path, this.root);
    for (const [name, value] of Object.entries(params)) {
      for (const one of [value].flat()) {
        if (one !== undefined && one !== null && one !== "") url.searchParams.append(name, one);
      }
    }
    return url;
  }

  async request(method, path, { params, body, signal } = {}) {
    let response;
    try {
      response = await fetch(this.url(path, params), {
        method,
        headers: this.headers(body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: "no-store",
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network", "the server does not answer (network error)");
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  get(path, params, signal) {
    return this.request("GET", path, { params, signal });
  }

  /** Sends one LAM message (`POST v1/lam`). */
  send(message) {
    return this.request("POST", "v1/lam", { body: message });
  }

  /**
   * The conversation's LAM messages as they are appended: yields `{id, message}` until the
   * stream ends (the conversation is over, or the connection dropped: the caller decides
   * whether to reconnect, with the last id it saw).
   */
  async *events(conversationId, lastEventId, signal) {
    const path = `v1/conversations/${encodeURIComponent(conversationId)}/events`;
    const extra = { Accept: "text/event-stream" };
    if (lastEventId) extra["Last-Event-ID"] = lastEventId;
    const response = await fetch(this.url(path), {
      headers: this.headers(extra),
      signal,
      cache: "no-store",
    });
    if (!response.ok) throw await errorOf(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let id = null;
    let data = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop(); // an unfinished line waits for the next chunk
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {
          // A blank line ends an event; comments (keep-alives) and `retry:` carry no data.
          if (data.length) yield { id, message: JSON.parse(data.join("\n")) };
          id = null;
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "id") id = text;
        else if (field === "data") data.push(text);
      }
    }
  }
}
