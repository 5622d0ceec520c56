// The plan as a DAG: each ToDo's live state from the LAM log, a layered layout (our own:
// a plan is a small DAG), and the SVG. Levels are the same as `lam.dag.dependency_levels`:
// a ToDo sits one level below the deepest of its dependencies.

import { currentTurn, secondsOf } from "./lam.js";

const SVG = "http://www.w3.org/2000/svg";
export const BOX = { width: 184, height: 76, gapX: 24, gapY: 44, pad: 12 };
const PORT_GAP = 26;

/** An SVG element with attributes (presentation attributes only: the CSP allows no inline style). */
export function svg(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/**
 * Per ToDo of the plan, what the current turn's log says: its latest `assign`, the answer
 * to it, and the state to show. An assign without an answer is `waiting` when it went to
 * an agent outside the planner (the desktop agent, the person), else `running`; without an
 * assign, the plan's own status (pending, skipped, or done/failed in an earlier round).
 */
export function todoStates(plan, messages) {
  const turn = currentTurn(messages);
  const answers = new Map();
  for (const m of turn) {
    if ((m.performative === "done" || m.performative === "failure") && m.in_reply_to) {
      answers.set(m.in_reply_to, m);
    }
  }
  const states = new Map();
  for (const todo of plan?.todos ?? []) {
    let assign = null;
    for (const m of turn) {
      if (m.performative === "assign" && m.content.todo.id === todo.id) assign = m;
    }
    const answer = assign ? answers.get(assign.id) ?? null : null;
    let status = todo.status;
    if (answer) status = answer.performative === "done" ? "done" : "failed";
    else if (assign) status = assign.receiver.startsWith("executor:") ? "running" : "waiting";
    states.set(todo.id, {
      todo,
      assign,
      answer,
      status,
      start: assign ? secondsOf(assign.timestamp) : null,
      end: answer ? secondsOf(answer.timestamp) : null,
    });
  }
  return states;
}

/** Levels by longest path from a root; ids unknown or on a cycle are put in level 0. */
export function levels(plan) {
  const todos = plan?.todos ?? [];
  const byId = new Map(todos.map((t) => [t.id, t]));
  const level = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (level.has(id)) return level.get(id);
    if (visiting.has(id) || !byId.has(id)) return -1; // a checked plan has neither
    visiting.add(id);
    const deps = byId.get(id).depends_on.map(depth);
    visiting.delete(id);
    const mine = deps.length ? Math.max(...deps) + 1 : 0;
    level.set(id, mine);
    return mine;
  };
  const rows = [];
  for (const todo of todos) {
    const d = depth(todo.id);
    (rows[d] ??= []).push(todo.id);
  }
  return rows.filter(Boolean);
}

/**
 * Box positions, top to bottom. Within a level, ToDos are ordered by the mean position of
 * their dependencies (one barycentre pass, plan order breaking ties), so that edges cross
 * less; each level is centred on the widest.
 */
export function layout(plan, maxWidth = Infinity) {
  // A level wider than the room is laid out in several rows (a wide plan scrolls down,
  // not sideways): as many boxes to a row as fit.
  const perRow = Math.max(1, Math.floor((maxWidth - 2 * BOX.pad + BOX.gapX) / (BOX.width + BOX.gapX)));
  const rows = levels(plan).flatMap((level) => {
    const split = [];
    for (let i = 0; i < level.length; i += perRow) split.push(level.slice(i, i + perRow));
    return split;
  });
  const byId = new Map((plan?.todos ?? []).map((t) => [t.id, t]));
  const slot = new Map();
  rows.forEach((row, depth) => {
    if (depth > 0) {
      const centre = (id) => {
        const deps = byId.get(id).depends_on.filter((d) => slot.has(d));
        return deps.length ? deps.reduce((s, d) => s + slot.get(d), 0) / deps.length : 0;
      };
      const planOrder = new Map(row.map((id, i) => [id, i]));
      row.sort((a, b) => centre(a) - centre(b) || planOrder.get(a) - planOrder.get(b));
    }
    const offset = -(row.length - 1) / 2;
    row.forEach((id, i) => slot.set(id, offset + i));
  });
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = BOX.pad * 2 + widest * BOX.width + (widest - 1) * BOX.gapX;
  const height = BOX.pad * 2 + rows.length * BOX.height + Math.max(0, rows.length - 1) * BOX.gapY;
  const positions = new Map();
  rows.forEach((row, depth) => {
    for (const id of row) {
      const cx = width / 2 + slot.get(id) * (BOX.width + BOX.gapX);
      positions.set(id, { x: cx - BOX.width / 2, y: BOX.pad + depth * (BOX.height + BOX.gapY) });
    }
  });
  return { positions, width, height };
}

/** A stable colour class per executor: the built-in ones by name, others by a hash. */
export function executorClass(name) {
  const known = ["desktop", "human", "llm", "http", "template"];
  if (known.includes(name)) return `executor-${name}`;
  let hash = 0;
  for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `executor-other-${hash % 4}`;
}

/** A label that is cut to `width` pixels once it is on the page (see `fitLabels`). */
export function label(attributes, text, width) {
  return svg("text", { ...attributes, "data-fit": width }, text);
}

/** A label wrapped onto up to `lines` lines of `width` pixels (see `fitLabels`). */
export function wrappedLabel(attributes, text, width, lines = 2) {
  return svg("text", { ...attributes, "data-wrap": width, "data-lines": lines }, text);
}

/** Cuts an element's text to `width` pixels with an ellipsis (measured in the page's font). */
function cut(element, width) {
  const full = element.textContent;
  if (element.getComputedTextLength() <= width) return;
  let low = 0;
  let high = full.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    element.textContent = `${full.slice(0, mid)}…`;
    if (element.getComputedTextLength() <= width) low = mid;
    else high = mid - 1;
  }
  element.textContent = `${full.slice(0, low)}…`;
}

/** Breaks a `wrappedLabel` into lines at spaces; the last line takes the rest, cut. */
function wrap(text) {
  const width = Number(text.dataset.wrap);
  const most = Number(text.dataset.lines);
  const words = text.textContent.split(/\s+/).filter(Boolean);
  const x = text.getAttribute("x");
  text.textContent = "";
  let line = svg("tspan", { x });
  text.append(line);
  let count = 1;
  let restPlaced = false; // the last line holds the rest: nothing more to place
  words.forEach((word, i) => {
    if (restPlaced) return;
    const before = line.textContent;
    line.textContent = before ? `${before} ${word}` : word;
    if (!before || count === most || line.getComputedTextLength() <= width) return;
    line.textContent = before;
    line = svg("tspan", { x, dy: "1.2em" }, word);
    text.append(line);
    count += 1;
    if (count === most) {
      line.textContent = words.slice(i).join(" ");
      restPlaced = true;
    }
  });
  for (const tspan of text.querySelectorAll("tspan")) cut(tspan, width);
}

/**
 * Fits each label made by `label` (cut to its width, with an ellipsis) and `wrappedLabel`
 * (wrapped onto its lines): measured in the page's font, so call it once the SVG is in
 * the document.
 */
export function fitLabels(root) {
  for (const text of root.querySelectorAll("text[data-fit]")) cut(text, Number(text.dataset.fit));
  for (const text of root.querySelectorAll("text[data-wrap]")) wrap(text);
}

/**
 * The DAG as an SVG: a `g.node` per ToDo (focusable; Enter or a click calls `onPick`) and
 * a `path.edge` per dependency, arrows pointing at the dependent ToDo. `critical` is a set
 * of ToDo ids (the timeline's critical path) whose boxes and edges are marked.
 */
export function renderDag(
  plan,
  states,
  { critical = new Set(), picked = null, onPick, maxWidth = Infinity } = {},
) {
  const { positions, width, height } = layout(plan, maxWidth);
  const root = svg("svg", {
    class: "dag-svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "group",
    "aria-label": `Plan: ${plan.todos.length} ToDos`,
  });
  // Arrow heads of a fixed size (userSpaceOnUse: not scaled by the edge's stroke width).
  const defs = svg("defs");
  for (const [id, cls] of [["arrow", "arrow-head"], ["arrow-critical", "arrow-head critical"]]) {
    const marker = svg("marker", {
      id,
      viewBox: "0 0 10 10",
      refX: 9,
      refY: 5,
      markerWidth: 9,
      markerHeight: 9,
      markerUnits: "userSpaceOnUse",
      orient: "auto-start-reverse",
    });
    marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", class: cls }));
    defs.append(marker);
  }
  root.append(defs);

  // Where edges leave and enter a box: spread along its bottom and top edge, in the order
  // of the boxes at their other end, so arrows into one box do not meet in one point.
  const ports = (ids, centre) => {
    const sorted = [...ids].sort((a, b) => positions.get(a).x - positions.get(b).x);
    return new Map(sorted.map((id, i) => [id, centre + (i - (sorted.length - 1) / 2) * PORT_GAP]));
  };
  const dependents = new Map(plan.todos.map((t) => [t.id, []]));
  for (const todo of plan.todos) {
    for (const dep of todo.depends_on) dependents.get(dep)?.push(todo.id);
  }
  const edges = svg("g", { class: "edges" });
  for (const todo of plan.todos) {
    const to = positions.get(todo.id);
    const known = todo.depends_on.filter((dep) => positions.has(dep));
    const inPorts = ports(known, to.x + BOX.width / 2);
    for (const dep of known) {
      const from = positions.get(dep);
      const x1 = ports(dependents.get(dep), from.x + BOX.width / 2).get(todo.id);
      const y1 = from.y + BOX.height;
      const x2 = inPorts.get(dep);
      const y2 = to.y - 2;
      const bend = (y2 - y1) / 2;
      const onPath = critical.has(dep) && critical.has(todo.id);
      edges.append(
        svg("path", {
          class: `edge${onPath ? " critical" : ""}`,
          d: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}`,
          "marker-end": onPath ? "url(#arrow-critical)" : "url(#arrow)",
          "data-from": dep,
          "data-to": todo.id,
        }),
      );
    }
  }
  root.append(edges);

  for (const todo of plan.todos) {
    const at = positions.get(todo.id);
    const state = states.get(todo.id);
    const status = state?.status ?? todo.status;
    const classes = ["node", `status-${status}`];
    if (critical.has(todo.id)) classes.push("critical");
    if (picked === todo.id) classes.push("picked");
    const approval = todo.requires_approval ? ", needs approval" : "";
    const node = svg("g", {
      class: classes.join(" "),
      transform: `translate(${at.x},${at.y})`,
      tabindex: 0,
      role: "button",
      "data-todo": todo.id,
      "data-status": status,
      "aria-label": `${todo.id} ${todo.title}: ${todo.executor}, ${status}${approval}`,
    });
    node.append(svg("title", {}, `${todo.id} · ${todo.title}\n${todo.executor} · ${status}`));
    node.append(svg("rect", { class: "box", width: BOX.width, height: BOX.height, rx: 7 }));
    node.append(
      svg("rect", { class: `stripe ${executorClass(todo.executor)}`, width: 6, height: BOX.height, rx: 3 }),
    );
    const room = BOX.width - 14 - (todo.requires_approval ? 26 : 8);
    node.append(wrappedLabel({ class: "title", x: 14, y: 22 }, todo.title, room));
    node.append(label({ class: "meta", x: 14, y: 62 }, `${todo.id} · ${todo.executor} · ${status}`, BOX.width - 22));
    if (todo.requires_approval) {
      // Drawn, not a glyph: no font on the machine needs to have it.
      const mark = svg("g", { class: "approval-mark", transform: `translate(${BOX.width - 13},13)` });
      mark.append(svg("circle", { r: 7.5 }), svg("text", { y: 4, "text-anchor": "middle" }, "!"));
      node.append(mark);
    }
    node.addEventListener("click", () => onPick?.(todo.id));
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onPick?.(todo.id);
      }
    });
    root.append(node);
  }
  return root;
}
