// The execution timeline: one bar per ToDo, from its `assign` to its `done`/`failure`
// (still open: to now), in lanes by executor, with the critical path marked: the chain of
// dependent ToDos with the longest total duration, as `lam.dag.critical_path` finds it.

import { executorClass, label, svg } from "./plan.js";

const ROW = 26;
const LANE = 84; // the executor's name
const LABEL = 236; // the executor's name and the ToDo's
const AXIS = 24;

/** The bars: ToDos that were assigned in the current turn, in plan order. */
export function bars(plan, states, now) {
  const rows = [];
  for (const todo of plan?.todos ?? []) {
    const state = states.get(todo.id);
    if (!state || state.start === null) continue;
    const open = state.end === null;
    rows.push({
      todo,
      status: state.status,
      start: state.start,
      end: open ? Math.max(now, state.start) : state.end,
      open,
    });
  }
  return rows;
}

/**
 * Longest chain of dependent ToDos by duration (ToDos without a bar count 0): the ids,
 * first to last. Ties go to the ToDo earliest in the plan, as in `lam.dag.critical_path`.
 */
export function criticalPath(plan, rows) {
  const todos = plan?.todos ?? [];
  if (!rows.length) return [];
  const duration = new Map(rows.map((r) => [r.todo.id, r.end - r.start]));
  const index = new Map(todos.map((t, i) => [t.id, i]));
  const finish = new Map();
  const before = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (finish.has(id)) return finish.get(id);
    if (visiting.has(id)) return 0; // a checked plan has no cycle; never loop on one
    visiting.add(id);
    let best = null;
    for (const dep of todos[index.get(id)].depends_on) {
      if (!index.has(dep)) continue;
      const f = visit(dep);
      const b = best === null ? null : finish.get(best);
      if (best === null || f > b || (f === b && index.get(dep) < index.get(best))) best = dep;
    }
    before.set(id, best);
    finish.set(id, (duration.get(id) ?? 0) + (best === null ? 0 : finish.get(best)));
    return finish.get(id);
  };
  let end = null;
  for (const todo of todos) {
    const f = visit(todo.id);
    if (end === null || f > finish.get(end)) end = todo.id;
  }
  const path = [];
  for (let id = end; id !== null; id = before.get(id)) path.push(id);
  return path.reverse();
}

const STEPS = [
  0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15,
  30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400,
];

/** A step for the axis ticks: the finest with at most `most` steps over the span, but never
 * one longer than the span (then the axis would show "0" alone). */
function tickStep(span, most) {
  const fits = STEPS.find((s) => span / s <= most) ?? STEPS[STEPS.length - 1];
  if (fits <= span) return fits;
  return [...STEPS].reverse().find((s) => s <= span) ?? STEPS[0];
}

// Room for one tick's label ("800 ms", "2.5 min") and a gap, in pixels.
const TICK_ROOM = 64;

/** Seconds as people read them: milliseconds under a second (a template plan's steps). */
export function formatSeconds(s) {
  if (s === 0) return "0";
  if (s < 1) return `${Number((s * 1000).toFixed(s < 0.01 ? 1 : 0))} ms`;
  if (s < 60) return `${Number(s.toFixed(2))} s`;
  if (s < 3600) return `${Number((s / 60).toFixed(1))} min`;
  return `${Number((s / 3600).toFixed(1))} h`;
}

/** The timeline as an SVG `width` wide: lanes by executor, a `rect.bar` per ToDo. */
export function renderTimeline(plan, rows, critical, width) {
  const byExecutor = new Map();
  for (const row of rows) {
    if (!byExecutor.has(row.todo.executor)) byExecutor.set(row.todo.executor, []);
    byExecutor.get(row.todo.executor).push(row);
  }
  const lanes = [...byExecutor.entries()];
  const height = AXIS + rows.length * ROW + lanes.length * 6 + 8;
  const origin = Math.min(...rows.map((r) => r.start));
  const span = Math.max(0.001, Math.max(...rows.map((r) => r.end)) - origin);
  const plot = width - LABEL - 16;
  const x = (t) => LABEL + ((t - origin) / span) * plot;

  const root = svg("svg", {
    class: "timeline-svg",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "group",
    "aria-label": `Timeline: ${rows.length} ToDos over ${formatSeconds(span)}`,
  });
  const defs = svg("defs");
  const hatch = svg("pattern", {
    id: "open-hatch",
    width: 8,
    height: 8,
    patternUnits: "userSpaceOnUse",
    patternTransform: "rotate(45)",
  });
  hatch.append(svg("rect", { width: 4, height: 8, class: "hatch" }));
  defs.append(hatch);
  root.append(defs);

  // About six ticks, fewer where their labels would run into each other.
  const step = tickStep(span, Math.max(1, Math.min(6, Math.floor(plot / TICK_ROOM))));
  for (let t = 0; t <= span + 1e-9; t += step) {
    root.append(svg("line", { class: "tick", x1: x(origin + t), x2: x(origin + t), y1: AXIS - 6, y2: height }));
    root.append(svg("text", { class: "tick-label", x: x(origin + t), y: AXIS - 10, "text-anchor": "middle" }, formatSeconds(t)));
  }

  let y = AXIS;
  for (const [executor, laneRows] of lanes) {
    const lane = svg("g", { class: "lane", "data-executor": executor });
    lane.append(svg("rect", { class: `lane-band ${executorClass(executor)}`, x: 0, y, width: 4, height: laneRows.length * ROW }));
    lane.append(label({ class: "lane-label", x: 10, y: y + 17 }, executor, LANE - 16));
    for (const row of laneRows) {
      const onPath = critical.includes(row.todo.id);
      const name = `${row.todo.id} ${row.todo.title}`;
      lane.append(label({ class: "row-label", x: LANE, y: y + 17 }, name, LABEL - LANE - 10));
      const classes = ["bar", `status-${row.status}`];
      if (row.open) classes.push("open");
      if (onPath) classes.push("critical");
      const bar = svg("rect", {
        class: classes.join(" "),
        x: x(row.start),
        y: y + 6,
        width: Math.max(3, x(row.end) - x(row.start)),
        height: ROW - 10,
        rx: 3,
        "data-todo": row.todo.id,
        "data-start": row.start,
        "data-end": row.open ? "" : row.end,
      });
      const took = formatSeconds(row.end - row.start);
      bar.append(svg("title", {}, `${name}: ${row.status}, ${row.open ? "running for" : "took"} ${took}${onPath ? " (critical path)" : ""}`));
      lane.append(bar);
      y += ROW;
    }
    y += 6;
    root.append(lane);
  }
  return root;
}
