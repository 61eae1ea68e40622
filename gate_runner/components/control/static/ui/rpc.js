// The UI's one way to the node: JSON-RPC 2.0 on POST /rpc (the session cookie authenticates
// it; the server checks Host and Origin), and one WebSocket on /rpc/ws for events. No second
// API: every page reads and changes the node through the methods the CLI uses.

export class RpcError extends Error {
  constructor(code, message, data) {
    super(message);
    this.code = code;
    this.data = data;
  }
  // The JSON-RPC codes of gate_runner/wire/jsonrpc.py that a page reacts to.
  get invalidSpec() { return this.code === -32000; } // SPEC_INVALID: data.issues
  get conflict() { return this.code === -32001; } // CONFLICT: a stale expectedGeneration
  get loggedOut() { return this.code === 401; }
}

let nextId = 1;

export async function call(method, params = {}) {
  let response;
  try {
    response = await fetch("/rpc", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: nextId++, method, params }),
      credentials: "same-origin",
    });
  } catch (e) {
    throw new RpcError(0, "The node does not answer: is `gate up` still running?");
  }
  if (response.status === 401 || response.status === 403) {
    window.dispatchEvent(new CustomEvent("gate:logged-out"));
    throw new RpcError(401, "Your session has ended: run `gate ui` for a new link.");
  }
  if (response.status === 429) {
    throw new RpcError(429, "Too many attempts: wait a minute, then run `gate ui` again.");
  }
  const reply = await response.json();
  if (reply.error) {
    throw new RpcError(reply.error.code, reply.error.message, reply.error.data);
  }
  return reply.result;
}

// One WebSocket for the whole page: event subscriptions that survive a dropped socket. On
// every (re)connect, listeners of "connected" run, so each page re-reads its state once and
// goes on from the events, with no polling; events carry a seq, and seqs already seen since
// the last read are dropped, so a reconnect delivers no duplicate.
class Live {
  constructor() {
    this.listeners = new Map();
    this.state = "connecting";
    this.delay = 500;
    this.lastSeq = 0;
    this.socket = null;
  }

  start() {
    if (this.socket) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/rpc/ws`);
    this.socket = socket;
    socket.onopen = () => {
      this.delay = 500;
      socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "events.subscribe",
                                   params: { queue: 2000 } }));
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.id === 1 && data.result) {
        this.lastSeq = data.result.seq;
        this.setState("open");
        this.emit("connected", {});
      } else if (data.method === "events.event") {
        const event = data.params;
        if (event.seq !== undefined && event.seq <= this.lastSeq) return;
        if (event.seq !== undefined) this.lastSeq = event.seq;
        this.emit(event.type, event.data, event);
      }
    };
    socket.onclose = () => {
      this.socket = null;
      this.setState("reconnecting");
      setTimeout(() => this.start(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    };
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    this.start();
    return () => this.listeners.get(type).delete(listener);
  }

  emit(type, data, event) {
    for (const listener of this.listeners.get(type) ?? []) listener(data, event);
  }
}

export const live = new Live();
