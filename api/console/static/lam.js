// LAM messages the console sends (docs/protocol.md): a request, and the answers to what
// waits. An answer comes from the receiver of the message it answers (`user` for the
// person, `cpa-desktop` for the desktop agent), goes to its sender, and names it in
// `in_reply_to`; an answer to an `assign` names its ToDo in `content.todo_id`.

export const LAM_VERSION = "1.0";

/** A UUID4 from the platform's random numbers (crypto.randomUUID needs a secure context). */
export function uuid4() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function message(performative, { sender, receiver, conversationId = null, inReplyTo = null, content }) {
  return {
    lam_version: LAM_VERSION,
    id: uuid4(), // the same id again would be a replay: the server answers it once
    performative,
    sender,
    receiver,
    conversation_id: conversationId,
    in_reply_to: inReplyTo,
    timestamp: new Date().toISOString(),
    content,
    metadata: {},
  };
}

/** A request from the person; with a conversation id, a new turn of that conversation. */
export function request(text, conversationId = null) {
  return message("request", {
    sender: "user",
    receiver: "planner",
    conversationId: conversationId || null,
    content: { text },
  });
}

function answering(waiting, performative, content) {
  return message(performative, {
    sender: waiting.receiver,
    receiver: waiting.sender,
    conversationId: waiting.conversation_id,
    inReplyTo: waiting.id,
    content,
  });
}

export function agree(propose) {
  return answering(propose, "agree", {});
}

export function refuse(propose, reason) {
  return answering(propose, "refuse", { reason });
}

export function done(assign, output) {
  return answering(assign, "done", { todo_id: assign.content.todo.id, output });
}

export function failure(assign, code, text) {
  return answering(assign, "failure", {
    todo_id: assign.content.todo.id,
    error: { code, message: text },
  });
}

/** What the person typed as a ToDo's output: JSON when it parses as JSON, else the text. */
export function outputOf(text) {
  const trimmed = text.trim();
  if (trimmed === "") return null;
  try {
    return JSON.parse(trimmed);
  } catch {
    return text;
  }
}

/** Seconds since the epoch, to the microsecond the timestamps carry (Date keeps ms only). */
export function secondsOf(timestamp) {
  const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(timestamp);
  if (!match) return Date.parse(timestamp) / 1000;
  return Date.parse(match[1] + match[3]) / 1000 + Number(match[2] ?? 0);
}

/** The messages of the conversation's latest turn: from its latest `request` on. */
export function currentTurn(messages) {
  let start = 0;
  messages.forEach((m, i) => {
    if (m.performative === "request") start = i;
  });
  return messages.slice(start);
}

function short(value, max = 80) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** One line on a LAM message, for a log. */
export function describe(m) {
  const c = m.content;
  switch (m.performative) {
    case "request": return `“${c.text}”`;
    case "inform":
      if (c.topic === "intent") return `intent ${c.intent} (${c.source}, ${Number(c.confidence).toFixed(2)})`;
      if (c.topic === "answer") return `answer, ${c.status}: ${short(c.text)}`;
      return c.topic;
    case "route": return `→ ${c.target}: ${c.reason}`;
    case "propose": return `plan “${c.plan.goal}”, ${c.plan.todos.length} ToDos`;
    case "agree": return c.comment ?? "agreed";
    case "refuse": return `refused: ${c.reason}`;
    case "assign": return `${c.todo.id} ${c.todo.title}`;
    case "done": return `${c.todo_id}: ${short(c.output)}`;
    case "failure": return `${c.todo_id ? `${c.todo_id}: ` : ""}${c.error.code}: ${c.error.message}`;
    default: return short(c);
  }
}
