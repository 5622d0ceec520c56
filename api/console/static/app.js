// The console: the tenant's conversations on the left (polled), the chosen one on the right
// (followed over its SSE stream): its request, intent and route, what waits for an answer
// (approve or refuse a plan, answer a desktop or human ToDo), the plan as a DAG beside its
// timeline, the answer, and the LAM log. Everything goes through the public API.

import { addKeyDialog, Api, ApiError } from "./api.js";
import * as lam from "./lam.js";
import { BOX, fitLabels, renderDag, todoStates } from "./plan.js";
import { bars, criticalPath, renderTimeline } from "./timeline.js";

const LIST_EVERY_MS = 3000; // each poll reads every listed conversation: not too often
const FINAL = new Set(["done", "failed"]);
const PERFORMATIVES = [
  "request", "inform", "route", "propose", "agree", "refuse",
  "assign", "done", "failure", "confirm", "discover", "offer",
];
const TIERS = {
  rules: "the rules (no LLM)",
  classifier: "the local classifier (no LLM)",
  compound: "compound detection (no LLM)",
  llm: "the router model (LLM)",
};

const api = new Api(new URL("..", location.href)); // the page is <root>/ui/
const $ = (id) => document.getElementById(id);
addKeyDialog({ cancel: true }); // before anything asks for a key

/** Makes an element: `el("p", {class: "x"}, "text", child, ...)`; text is never parsed as HTML. */
function el(name, attributes = {}, ...children) {
  const element = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    element.setAttribute(key, value === true ? "" : value);
  }
  add(element, ...children);
  return element;
}

/** A form's control by name (not `form.name`: a control named like a form property hides). */
const field = (form, name) => form.elements.namedItem(name);

/** Appends children, leaving out the absent ones (Element.append would write "null"). */
const add = (parent, ...children) => parent.append(...children.filter((c) => c !== null && c !== undefined));

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function ago(seconds) {
  const s = Math.max(0, Date.now() / 1000 - seconds);
  if (s < 10) return "just now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function clock(timestamp) {
  const d = new Date(timestamp);
  return `${d.toLocaleTimeString([], { hour12: false })}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

// Errors and notices -----------------------------------------------------------------------

/** Shows an error: the API's own words (`error.message`) and the fields it names. */
function report(error) {
  if (error?.name === "AbortError") return;
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

function dismissAlert() {
  $("alert").hidden = true;
}

function notice(text) {
  $("notice").textContent = text;
}

// The API key ------------------------------------------------------------------------------

function askKey(message = "") {
  api.key = null;
  $("key-error").textContent = message;
  $("key-button").hidden = true;
  const dialog = $("key-dialog");
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

/** Checks the key (or that none is needed) with a cheap call; true when the API answers. */
async function checkAccess() {
  try {
    await api.get("v1/capabilities");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      askKey(api.key ? error.message : "");
      $("session-note").textContent = "No API key yet.";
      return false;
    }
    report(error);
    return false;
  }
  $("session-note").textContent = api.key ? "API key kept for this tab." : "Local mode: no API key needed.";
  $("key-button").hidden = !api.key;
  return true;
}

async function submitKey(event) {
  event.preventDefault();
  api.key = $("key-input").value.trim();
  $("key-error").textContent = "";
  try {
    await api.get("v1/capabilities");
  } catch (error) {
    api.key = null;
    $("key-error").textContent = error.message; // the API's words: "unknown API key"
    return;
  }
  $("key-input").value = "";
  $("key-dialog").close();
  await checkAccess();
  pollList();
  route();
}

// The list ---------------------------------------------------------------------------------

const list = { rows: [], filter: "", polling: false };

async function pollList() {
  if (list.polling || $("key-dialog").open) return;
  list.polling = true;
  try {
    const body = await api.get("v1/overview", { status: list.filter || undefined });
    list.rows = body.conversations;
    renderList();
    // The open conversation changed elsewhere (a new turn, an answer by the desktop agent).
    const row = list.rows.find((r) => r.conversation_id === shown?.id);
    if (row && shown?.view && row.status !== shown.view.status) {
      scheduleRefresh(shown);
      if (!FINAL.has(row.status)) follow(shown);
    }
  } catch (error) {
    report(error);
  } finally {
    list.polling = false;
  }
}

function waitsText(row) {
  return row.waiting_for
    .map((w) => (w.performative === "propose" ? `approval (${w.receiver})` : `${w.todo_id} ${w.title} (${w.receiver})`))
    .join("; ");
}

/** A status badge; a plan the person refused is "refused", not a green "done". */
function badge(status, refused) {
  const shown = status === "done" && refused ? "refused" : status;
  return el("span", { class: `badge status-${shown}` }, shown);
}

function renderList() {
  const ul = $("conversations");
  const focused = document.activeElement?.closest?.("#conversations [data-cid]")?.dataset.cid;
  ul.replaceChildren(
    ...list.rows.map((row) =>
      el(
        "li",
        {},
        el(
          "a",
          {
            href: `#/c/${encodeURIComponent(row.conversation_id)}`,
            class: "conversation",
            "data-cid": row.conversation_id,
            "data-status": row.status,
            "aria-current": row.conversation_id === shown?.id ? "page" : null,
          },
          el(
            "span",
            { class: "row1" },
            badge(row.status, row.refused),
            el("span", { class: "intent" }, row.intent ?? "no intent"),
            el("span", { class: "age" }, ago(row.created)),
          ),
          el("span", { class: "request", title: row.request ?? "" }, row.request ?? row.conversation_id),
          row.waiting_for.length ? el("span", { class: "waits" }, `waits for ${waitsText(row)}`) : null,
        ),
      ),
    ),
  );
  $("list-empty").hidden = list.rows.length > 0;
  if (focused) ul.querySelector(`[data-cid="${CSS.escape(focused)}"]`)?.focus();
}

// The open conversation --------------------------------------------------------------------

/** What the console holds of the conversation it shows. */
class Shown {
  constructor(id) {
    this.id = id;
    this.path = `v1/conversations/${encodeURIComponent(id)}`;
    this.view = null; // GET v1/conversations/{id}
    this.streamed = []; // messages from the stream that the view does not have yet
    this.inbox = [];
    this.effects = new Map(); // ToDo id -> its effect (GET .../effects)
    this.effectsFor = null;
    this.lastEventId = null;
    this.following = false;
    this.refreshing = null;
    this.again = false;
    this.picked = null; // the ToDo whose details are shown
    this.hidden = new Set(); // performatives filtered out of the log
    this.openEntries = new Set(); // log entries with their JSON open
    this.keys = {};
    this.abort = new AbortController();
  }

  /** The view's log, then what the stream brought since. */
  get messages() {
    const messages = this.view?.messages ?? [];
    const known = new Set(messages.map((m) => m.id));
    return [...messages, ...this.streamed.filter((m) => !known.has(m.id))];
  }
}

let shown = null;

function route() {
  const match = /^#\/c\/(.+)$/.exec(location.hash);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (id !== shown?.id) show(id);
}

async function show(id) {
  shown?.abort.abort();
  shown = id ? new Shown(id) : null;
  renderList();
  $("detail-body").hidden = true;
  $("detail-empty").hidden = false;
  $("detail-empty").textContent = id ? "Loading…" : "Choose a conversation, or send a new request.";
  if (!shown) return;
  const mine = shown;
  try {
    await refresh(mine);
  } catch (error) {
    if (mine !== shown) return;
    $("detail-empty").textContent = error.message;
    report(error);
    return;
  }
  if (!FINAL.has(mine.view.status)) follow(mine);
}

async function refresh(mine) {
  const signal = mine.abort.signal;
  const [view, inbox] = await Promise.all([
    api.get(mine.path, {}, signal),
    api.get(`${mine.path}/inbox`, {}, signal),
  ]);
  if (mine !== shown) return;
  const changed = mine.view !== null && mine.view.status !== view.status;
  mine.view = view;
  mine.inbox = inbox;
  if (changed) pollList(); // the list shows the new status too
  const known = new Set(view.messages.map((m) => m.id));
  mine.streamed = mine.streamed.filter((m) => !known.has(m.id));
  // Why a step needs approval is not in the log: ask once per plan.
  const planKey = JSON.stringify(view.plan?.todos.map((t) => [t.id, t.executor, t.requires_approval]) ?? null);
  if (view.plan && planKey !== mine.effectsFor) {
    const effects = await api.get(`${mine.path}/effects`, {}, signal);
    mine.effects = new Map(effects.todos.map((e) => [e.todo_id, e]));
    mine.effectsFor = planKey;
  }
  if (mine === shown) render(mine);
}

/** Refreshes the view and inbox; calls that come while one runs make one more, not many. */
function scheduleRefresh(mine) {
  if (mine.refreshing) {
    mine.again = true;
    return;
  }
  mine.refreshing = (async () => {
    do {
      mine.again = false;
      try {
        await refresh(mine);
      } catch (error) {
        if (mine === shown) report(error);
      }
    } while (mine.again && mine === shown);
    mine.refreshing = null;
  })();
}

/** Follows the SSE stream while the conversation runs; reconnects after a drop. */
async function follow(mine) {
  if (mine.following) return;
  mine.following = true;
  let delay = 500;
  try {
    while (mine === shown) {
      try {
        for await (const { id, message } of api.events(mine.id, mine.lastEventId, mine.abort.signal)) {
          mine.lastEventId = id ?? mine.lastEventId;
          if (!mine.messages.some((m) => m.id === message.id)) {
            mine.streamed.push(message);
            render(mine); // live: the log, the DAG's states and the timeline at once
          }
          scheduleRefresh(mine); // and the statuses and inbox from the API
          delay = 500;
        }
        // The stream ended: over, or dropped. The view says which.
        await refresh(mine);
        if (FINAL.has(mine.view?.status)) return;
      } catch (error) {
        if (error.name === "AbortError" || mine !== shown) return;
        if (error instanceof ApiError && error.status !== 0 && error.status !== 503) {
          report(error);
          return;
        }
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 10000);
    }
  } finally {
    mine.following = false;
  }
}

// Rendering the conversation -----------------------------------------------------------------

function latest(messages, performative, test = () => true) {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i].performative === performative && test(messages[i])) return messages[i];
  }
  return null;
}

function render(mine) {
  const view = mine.view;
  if (!view) return;
  const messages = mine.messages;
  const turn = lam.currentTurn(messages);
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;

  const request = latest(messages, "request");
  $("detail-title").textContent = request?.content.text ?? view.conversation_id;
  const status = $("detail-status");
  status.replaceWith(Object.assign(badge(view.status, "refused" in (view.result ?? {})), { id: "detail-status" }));
  $("detail-id").textContent = view.conversation_id;
  $("detail-age").textContent = request ? `asked ${clock(request.timestamp)}` : "";

  const intent = latest(turn, "inform", (m) => m.content.topic === "intent");
  const routed = latest(turn, "route");
  $("detail-intent").textContent = intent
    ? `${intent.content.intent} (confidence ${Number(intent.content.confidence).toFixed(2)}), chosen by ${TIERS[intent.content.source] ?? intent.content.source}`
    : routed
      ? "no single intent"
      : "not decided yet";
  $("detail-route").textContent = routed ? `→ ${routed.content.target}: ${routed.content.reason}` : "—";

  renderActions(mine);
  renderViews(mine);

  const answer = latest(turn, "inform", (m) => m.content.topic === "answer");
  const failed = latest(turn, "failure", (m) => !m.content.todo_id);
  const runError = view.result?.error;
  $("answer").textContent = answer
    ? answer.content.text
    : failed
      ? `${failed.content.error.code}: ${failed.content.error.message}`
      : runError
        ? `${runError.code}: ${runError.message}`
        : view.result?.refused
          ? `The plan was refused: ${view.result.refused}`
        : FINAL.has(view.status) ? "—" : "(not answered yet)";
  renderLog(mine, messages);
}

function currentPlan(mine) {
  return mine.view?.plan ?? latest(lam.currentTurn(mine.messages), "propose")?.content.plan ?? null;
}

/** The DAG and the timeline; the timeline alone again each second while a bar is open. */
function renderViews(mine, timelineOnly = false) {
  const plan = currentPlan(mine);
  const messages = mine.messages;
  const states = todoStates(plan, messages);
  const rows = bars(plan, states, Date.now() / 1000);
  const critical = criticalPath(plan, rows);
  mine.hasOpenBars = rows.some((r) => r.open) && !FINAL.has(mine.view.status);

  const box = $("timeline");
  const width = Math.max(420, box.clientWidth || 480);
  box.replaceChildren(rows.length ? renderTimeline(plan, rows, critical, width) : "");
  fitLabels(box);
  $("timeline-note").textContent = rows.length
    ? `${rows.filter((r) => !r.open).length} of ${plan.todos.length} ToDos finished; critical path ${critical.join(" → ")}`
    : "Nothing has run yet.";
  if (timelineOnly) return;

  const dag = $("dag");
  $("plan-goal").textContent = plan ? plan.goal : "No plan (yet).";
  const focused = document.activeElement?.closest?.("#dag [data-todo]")?.dataset.todo;
  dag.replaceChildren(
    plan
      ? renderDag(plan, states, {
          maxWidth: Math.max(BOX.width + 2 * BOX.pad, dag.clientWidth || Infinity),
          critical: new Set(critical),
          picked: mine.picked,
          onPick: (id) => {
            mine.picked = mine.picked === id ? null : id;
            renderViews(mine);
          },
        })
      : "",
  );
  fitLabels(dag);
  if (focused) dag.querySelector(`[data-todo="${CSS.escape(focused)}"]`)?.focus();
  renderTodoDetail(mine, plan, states);
}

function renderTodoDetail(mine, plan, states) {
  const box = $("todo-detail");
  const state = mine.picked ? states.get(mine.picked) : null;
  box.hidden = !state;
  if (!state) return;
  const { todo } = state;
  const effect = mine.effects.get(todo.id);
  const output = state.answer?.performative === "done" ? state.answer.content.output : todo.output;
  const error = state.answer?.performative === "failure"
    ? `${state.answer.content.error.code}: ${state.answer.content.error.message}`
    : todo.error;
  box.replaceChildren(
    el("h4", {}, `${todo.id} · ${todo.title}`),
    el(
      "dl",
      {},
      el("dt", {}, "executor"), el("dd", {}, todo.executor),
      el("dt", {}, "status"), el("dd", {}, state.status),
      el("dt", {}, "depends on"), el("dd", {}, todo.depends_on.join(", ") || "—"),
      el("dt", {}, "effect"), el("dd", {}, effect ? `${effect.effect} (${effect.declared_by})` : "—"),
      el("dt", {}, "approval"), el("dd", {}, todo.requires_approval ? "needed" : "not needed"),
      todo.description ? el("dt", {}, "description") : null,
      todo.description ? el("dd", {}, todo.description) : null,
      output !== null && output !== undefined ? el("dt", {}, "output") : null,
      output !== null && output !== undefined ? el("dd", {}, el("pre", {}, JSON.stringify(output, null, 2))) : null,
      error ? el("dt", {}, "error") : null,
      error ? el("dd", {}, error) : null,
    ),
  );
}

// Acting -----------------------------------------------------------------------------------

/** Sends one answer; buttons of its card are off meanwhile. Errors in the API's words. */
async function sendAnswer(card, message, done) {
  const controls = card.querySelectorAll("button, input, textarea");
  controls.forEach((c) => (c.disabled = true));
  try {
    await api.send(message);
    dismissAlert();
    notice(done);
    card.classList.add("sent");
    shown.focusActions = true; // the next thing to answer gets the focus
    scheduleRefresh(shown);
    pollList();
  } catch (error) {
    controls.forEach((c) => (c.disabled = false));
    report(error);
  }
}

function whyApproval(effect, intent) {
  if (!effect) return "";
  const harmless = effect.effect === "none" || effect.effect === "read";
  if (harmless) return `effect ${effect.effect}, but the planner asked for approval`;
  const by = {
    template: `declared by the ${intent ?? ""} plan template`.replace("  ", " "),
    executor: `the ${effect.executor} executor's effect`,
    assumed: "nobody declared what it does, so it is taken to change something",
  }[effect.declared_by];
  return `effect ${effect.effect}: ${by}`;
}

function proposalCard(mine, propose) {
  const plan = propose.content.plan;
  const asking = plan.todos.filter((t) => t.requires_approval);
  const card = el("article", { class: "action proposal", "data-message": propose.id });
  const refuseForm = el(
    "form",
    { class: "refuse-form", hidden: true },
    el("label", { for: `reason-${propose.id}` }, "Why not?"),
    el("input", { id: `reason-${propose.id}`, name: "reason", required: true }),
    el("button", { type: "submit" }, "Refuse the plan"),
    el("button", { type: "button", class: "secondary", "data-act": "cancel" }, "Cancel"),
  );
  add(
    card,
    el("h3", {}, "Approve the plan?"),
    el("p", {}, `Proposed to ${propose.receiver}: `, el("strong", {}, plan.goal)),
    el("p", {}, asking.length === 1 ? "This step changes something outside the conversation:" : `These ${asking.length} steps change something outside the conversation:`),
    el(
      "ul",
      { class: "approvals" },
      ...asking.map((t) =>
        el(
          "li",
          { "data-todo": t.id },
          el("strong", {}, `${t.id} · ${t.title}`),
          ` — ${t.executor}`,
          el("span", { class: "why" }, whyApproval(mine.effects.get(t.id), mine.view?.intent)),
        ),
      ),
    ),
    plan.todos.length > asking.length
      ? el("p", { class: "secondary" }, `${plan.todos.length - asking.length} more step(s) only read or work inside the conversation.`)
      : null,
    el(
      "div",
      { class: "buttons" },
      el("button", { type: "button", class: "primary", "data-act": "approve" }, "Approve"),
      el("button", { type: "button", "data-act": "refuse" }, "Refuse…"),
    ),
    refuseForm,
  );
  card.querySelector("[data-act=approve]").addEventListener("click", () =>
    sendAnswer(card, lam.agree(propose), "Plan approved."),
  );
  card.querySelector("[data-act=refuse]").addEventListener("click", () => {
    refuseForm.hidden = false;
    refuseForm.querySelector("input").focus();
  });
  const closeRefuse = () => {
    refuseForm.hidden = true;
    card.querySelector("[data-act=refuse]").focus();
  };
  refuseForm.querySelector("[data-act=cancel]").addEventListener("click", closeRefuse);
  refuseForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      closeRefuse();
    }
  });
  refuseForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = field(refuseForm, "reason").value.trim();
    sendAnswer(card, lam.refuse(propose, reason), "Plan refused.");
  });
  return card;
}

function assignCard(assign) {
  const todo = assign.content.todo;
  const who = assign.receiver === "cpa-desktop"
    ? "the desktop agent (cpa-desktop): answer as it"
    : assign.receiver === "user" ? "you" : assign.receiver;
  const id = assign.id;
  const card = el("article", { class: "action assign", "data-message": id, "data-todo": todo.id });
  const doneForm = el(
    "form",
    { class: "done-form" },
    el("label", { for: `output-${id}` }, "Output ", el("small", {}, "(JSON, or plain text)")),
    el("textarea", { id: `output-${id}`, name: "output", rows: 2 }),
    el("button", { type: "submit", class: "primary" }, `Report done as ${assign.receiver}`),
  );
  const failForm = el(
    "form",
    { class: "failure-form" },
    el("label", { for: `message-${id}` }, "What went wrong"),
    el("input", { id: `message-${id}`, name: "message", required: true }),
    el("label", { for: `code-${id}` }, "Code"),
    el("input", { id: `code-${id}`, name: "code", required: true, value: "failed", class: "code" }),
    el("button", { type: "submit" }, "Report failure"),
  );
  add(
    card,
    el("h3", {}, `${todo.id} · ${todo.title}`),
    el("p", {}, `Waiting for ${who}. Executor `, el("code", {}, todo.executor), "."),
    todo.description ? el("p", { class: "description" }, todo.description) : null,
    el("details", {}, el("summary", {}, "Inputs"), el("pre", {}, JSON.stringify(assign.content.inputs, null, 2))),
    doneForm,
    failForm,
  );
  doneForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const output = lam.outputOf(field(doneForm, "output").value);
    sendAnswer(card, lam.done(assign, output), `${todo.id} reported done.`);
  });
  // Enter in a textarea is a new line; Ctrl+Enter (or ⌘+Enter) sends.
  field(doneForm, "output").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) doneForm.requestSubmit();
  });
  failForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = lam.failure(assign, field(failForm, "code").value.trim(), field(failForm, "message").value.trim());
    sendAnswer(card, message, `${todo.id} reported failed.`);
  });
  return card;
}

function renderActions(mine) {
  // Rebuilt only when what waits changes: never under the person's typing.
  const key = JSON.stringify([mine.inbox.map((m) => m.id), [...mine.effects.keys()]]);
  if (key === mine.keys.actions) return;
  mine.keys.actions = key;
  const box = $("actions");
  // Keep the focus in the panel when it was there (or on an answer just sent, whose
  // disabled button lost it): on the next control, else on the conversation.
  const hadFocus = box.contains(document.activeElement) || mine.focusActions;
  mine.focusActions = false;
  box.replaceChildren(
    ...(mine.inbox.length ? [el("h3", { class: "visually-hidden" }, "Waiting for an answer")] : []),
    ...mine.inbox.map((m) => (m.performative === "propose" ? proposalCard(mine, m) : assignCard(m))),
  );
  box.hidden = mine.inbox.length === 0;
  if (hadFocus) (box.querySelector("textarea, input, button") ?? $("detail")).focus();
}

// The LAM log ------------------------------------------------------------------------------

function renderLog(mine, messages) {
  const present = PERFORMATIVES.filter((p) => messages.some((m) => m.performative === p));
  const filterKey = present.join();
  const fieldset = $("log-filter");
  if (filterKey !== mine.keys.filter) {
    mine.keys.filter = filterKey;
    fieldset.replaceChildren(
      el("legend", {}, "Show"),
      ...present.map((p) => {
        const count = messages.filter((m) => m.performative === p).length;
        const box = el("input", { type: "checkbox", id: `show-${p}`, value: p, checked: !mine.hidden.has(p) });
        box.addEventListener("change", () => {
          if (box.checked) mine.hidden.delete(p);
          else mine.hidden.add(p);
          renderLog(mine, mine.messages);
        });
        return el("label", { class: `perf perf-${p}`, for: `show-${p}` }, box, ` ${p} `, el("span", { class: "count" }, String(count)));
      }),
    );
  } else {
    for (const p of present) {
      const count = fieldset.querySelector(`label[for=show-${p}] .count`);
      if (count) count.textContent = String(messages.filter((m) => m.performative === p).length);
    }
  }
  const logKey = `${messages.map((m) => m.id).join()}|${[...mine.hidden].join()}`;
  if (logKey === mine.keys.log) return;
  mine.keys.log = logKey;
  $("log").replaceChildren(
    ...messages
      .filter((m) => !mine.hidden.has(m.performative))
      .map((m) => {
        const details = el("details", { open: mine.openEntries.has(m.id) }, el("summary", {}, "JSON"), el("pre", {}, JSON.stringify(m, null, 2)));
        details.addEventListener("toggle", () => {
          if (details.open) mine.openEntries.add(m.id);
          else mine.openEntries.delete(m.id);
        });
        return el(
          "li",
          { class: `entry perf-${m.performative}`, "data-performative": m.performative, "data-id": m.id },
          el("time", { datetime: m.timestamp }, clock(m.timestamp)),
          el("span", { class: `perf perf-${m.performative}` }, m.performative),
          el("span", { class: "parties" }, `${m.sender} → ${m.receiver}`),
          el("span", { class: "summary" }, lam.describe(m)),
          details,
        );
      }),
  );
}

// Sending a request ------------------------------------------------------------------------

async function submitRequest(event) {
  event.preventDefault();
  const form = event.target;
  const text = field(form, "text").value.trim();
  if (!text) return;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const accepted = await api.send(lam.request(text, field(form, "conversation").value.trim() || null));
    dismissAlert();
    field(form, "text").value = "";
    field(form, "conversation").value = "";
    notice(`Request sent: conversation ${accepted.conversation_id}.`);
    const hash = `#/c/${encodeURIComponent(accepted.conversation_id)}`;
    if (location.hash === hash) show(accepted.conversation_id); // a new turn of this one
    else location.hash = hash;
    $("detail").focus();
    pollList();
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

// Start ------------------------------------------------------------------------------------

function wire() {
  $("request-form").addEventListener("submit", submitRequest);
  $("key-form").addEventListener("submit", submitKey);
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-dialog").addEventListener("close", () => {
    if (!api.key) {
      $("key-button").hidden = false;
      $("key-button").textContent = "Enter an API key";
    }
  });
  $("key-button").addEventListener("click", () => askKey());
  $("alert-close").addEventListener("click", dismissAlert);
  $("status-filter").addEventListener("change", (event) => {
    list.filter = event.target.value;
    pollList();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("alert").hidden && !$("key-dialog").open) dismissAlert();
  });
  window.addEventListener("hashchange", route);
  let resizing = null;
  window.addEventListener("resize", () => {
    cancelAnimationFrame(resizing);
    resizing = requestAnimationFrame(() => shown?.view && renderViews(shown, true));
  });
  // Open bars grow while their ToDo runs; the list's ages move on.
  setInterval(() => {
    if (!document.hidden && shown?.hasOpenBars) renderViews(shown, true);
  }, 1000);
  setInterval(() => {
    if (!document.hidden) pollList();
  }, LIST_EVERY_MS);
}

async function start() {
  wire();
  if (await checkAccess()) {
    pollList();
    route();
  }
}

start();
