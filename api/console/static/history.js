// The history view: the tenant's conversations as the history keeps them (GET v1/history),
// filtered and paged with its cursor, and one conversation's whole record
// (GET v1/history/{id}): its facts, ToDos, approvals, answer and LAM log, also after the
// server's Redis forgot it. The export downloads the matches as JSON lines.

import { addKeyDialog, Api, ApiError } from "./api.js";
import { describe } from "./lam.js";

const api = new Api(new URL("..", location.href)); // the page is <root>/ui/history.html
const $ = (id) => document.getElementById(id);
addKeyDialog(); // before anything asks for a key
const state = { cursor: null, filters: {} };

function el(name, attributes = {}, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

const when = (timestamp) => (timestamp ? new Date(timestamp).toLocaleString([], { hour12: false }) : "");

function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    askKey(error.message);
    return;
  }
  $("alert-text").textContent = error?.message ?? String(error);
  $("alert-fields").replaceChildren(
    ...(error?.fields ?? []).map((f) => el("li", {}, el("code", {}, f.field || "(message)"), ` ${f.message}`)),
  );
  $("alert").hidden = false;
}

function askKey(message = "") {
  api.key = null;
  $("key-error").textContent = message;
  if (!$("key-dialog").open) $("key-dialog").showModal();
  $("key-input").focus();
}

/** The filters of the form, as the API names them (dates: that day, in this browser's zone). */
function filters() {
  const form = $("history-filters");
  const value = (name) => form.elements.namedItem(name).value.trim();
  const day = (name, next) => {
    const text = value(name);
    if (!text) return undefined;
    const date = new Date(`${text}T00:00:00`);
    if (next) date.setDate(date.getDate() + 1);
    return date.toISOString();
  };
  return {
    status: value("status"),
    intent: value("intent"),
    executor: value("executor"),
    text: value("text"),
    from: day("from", false),
    to: day("to", true),
  };
}

function item(conversation) {
  const id = conversation.conversation_id;
  const status = conversation.outcome === "refused" ? "refused" : conversation.status;
  return el(
    "li",
    { "data-id": id },
    el(
      "a",
      { href: `#/h/${encodeURIComponent(id)}`, class: "conversation" },
      el("span", { class: "title" }, conversation.request || id),
      el(
        "span",
        { class: "meta" },
        el("span", { class: `badge status-${status}` }, status),
        ` ${conversation.intent ?? "no intent"} · ${when(conversation.created_at)}`,
      ),
    ),
  );
}

async function search(more = false) {
  if (!more) {
    state.filters = filters();
    state.cursor = null;
  }
  try {
    const page = await api.get("v1/history", { ...state.filters, cursor: state.cursor ?? undefined, limit: 50 });
    const list = $("history-list");
    const items = page.conversations.map(item);
    if (more) list.append(...items);
    else list.replaceChildren(...items);
    state.cursor = page.next_cursor;
    $("history-more").hidden = !page.next_cursor;
    $("history-empty").hidden = list.children.length > 0;
    $("alert").hidden = true;
    $("notice").textContent = `${list.children.length} conversations shown.`;
  } catch (error) {
    report(error);
  }
}

async function exportLines() {
  try {
    const response = await fetch(api.url("v1/history/export", filters()), { headers: api.headers() });
    if (!response.ok) {
      const error = (await response.json()).error;
      throw new ApiError(response.status, error.code, error.message, error.fields);
    }
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "history.jsonl" });
    document.body.append(link);
    link.click();
    link.remove();
  } catch (error) {
    report(error);
  }
}

function facts(record) {
  const rows = [
    ["Tenant", record.tenant + (record.principal ? ` (${record.principal})` : "")],
    ["Intent", record.intent ? `${record.intent} (${record.tier ?? "?"})` : "none"],
    ["Route", record.route ?? ""],
    ["Language", record.language ?? ""],
    ["Outcome", record.outcome ?? record.status],
    ["Opened", when(record.created_at)],
    ["Last message", when(record.updated_at)],
    ["Turns, re-plans", `${record.turns}, ${record.replans}`],
  ];
  return rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]);
}

function todos(record) {
  const head = el("tr", {}, ...["ToDo", "executor / tool", "status", "started", "finished", "output or error"].map((h) => el("th", {}, h)));
  const rows = record.todos.map((t) =>
    el(
      "tr",
      { "data-todo": t.id },
      el("td", {}, `${t.id} ${t.title}`),
      el("td", {}, t.tool ?? t.executor),
      el("td", {}, el("span", { class: `badge status-${t.status}` }, t.status)),
      el("td", {}, when(t.started_at)),
      el("td", {}, when(t.finished_at)),
      el("td", {}, t.error ?? (t.output === null ? "" : JSON.stringify(t.output))),
    ),
  );
  return [el("thead", {}, head), el("tbody", {}, ...rows)];
}

async function show(id) {
  if (!id) {
    $("record").hidden = true;
    $("record-empty").hidden = false;
    return;
  }
  let record;
  try {
    record = await api.get(`v1/history/${encodeURIComponent(id)}`);
  } catch (error) {
    report(error);
    return;
  }
  $("record-title").textContent = record.request || id;
  const status = record.outcome === "refused" ? "refused" : record.status;
  $("record-status").className = `badge status-${status}`;
  $("record-status").textContent = status;
  $("record-id").textContent = record.conversation_id;
  $("record-facts").replaceChildren(...facts(record));
  $("record-todos").replaceChildren(...todos(record));
  $("record-approvals").replaceChildren(
    ...(record.approvals.length
      ? record.approvals.map((a) =>
          el(
            "li",
            {},
            `${a.decision} by ${a.sender}${a.principal ? ` (${a.principal})` : ""} at ${when(a.at)}; plan sha256 `,
            el("code", {}, a.plan_digest ?? ""),
            a.reason ? ` — ${a.reason}` : "",
          ),
        )
      : [el("li", { class: "empty" }, "No plan was approved or refused.")]),
  );
  $("record-answer").textContent = record.answer ?? "";
  $("record-log").replaceChildren(
    ...record.messages.map((m) =>
      el(
        "li",
        { class: `entry perf-${m.performative}`, "data-performative": m.performative, "data-id": m.id },
        el("time", { datetime: m.timestamp }, when(m.timestamp)),
        el("span", { class: `perf perf-${m.performative}` }, m.performative),
        el("span", { class: "parties" }, `${m.sender} → ${m.receiver}`),
        el("span", { class: "summary" }, describe(m)),
        el("details", {}, el("summary", {}, "JSON"), el("pre", {}, JSON.stringify(m, null, 2))),
      ),
    ),
  );
  $("record-empty").hidden = true;
  $("record").hidden = false;
}

const chosen = () => {
  const match = location.hash.match(/^#\/h\/(.+)$/);
  return match ? decodeURIComponent(match[1]) : null;
};

async function start() {
  $("alert-close").addEventListener("click", () => ($("alert").hidden = true));
  $("history-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  $("history-more").addEventListener("click", () => search(true));
  $("export").addEventListener("click", exportLines);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    api.key = $("key-input").value.trim();
    $("key-dialog").close();
    search();
    show(chosen());
  });
  window.addEventListener("hashchange", () => show(chosen()));
  $("session-note").textContent = api.key ? "API key kept for this tab." : "";
  await search();
  await show(chosen());
}

start();
