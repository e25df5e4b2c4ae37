// One WebSocket to /api/live per browser page. Pages subscribe with on(type, fn) and ask with
// send({op: ...}); the last op of each kind is kept ("pole" replaces an earlier pole) and sent
// again after a reconnect, so a page never has to notice the connection dropped.
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 15_000;
const CLOSE_POLICY = 1008;

export function connect({ url, onRefused } = {}) {
  const address =
    url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/live`;
  const handlers = new Map();
  const ops = new Map();
  let socket = null;
  let retry = RETRY_MIN_MS;
  let closed = false;
  let timer = null;

  function emit(type, message) {
    for (const fn of handlers.get(type) ?? []) {
      try {
        fn(message);
      } catch (err) {
        console.error(err);
      }
    }
  }

  function open() {
    socket = new WebSocket(address);
    socket.onopen = () => {
      retry = RETRY_MIN_MS;
      for (const op of ops.values()) socket.send(JSON.stringify(op));
      emit("open", {});
    };
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      emit(message.type, message);
    };
    socket.onclose = (event) => {
      emit("close", { code: event.code });
      if (closed) return;
      if (event.code === CLOSE_POLICY && onRefused) {
        onRefused();
        return;
      }
      timer = setTimeout(open, retry);
      retry = Math.min(retry * 2, RETRY_MAX_MS);
    };
  }

  open();
  return {
    /** Call fn(message) for each message of this type; returns the unsubscribe function. */
    on(type, fn) {
      if (!handlers.has(type)) handlers.set(type, new Set());
      handlers.get(type).add(fn);
      return () => handlers.get(type)?.delete(fn);
    },
    /** Send an op now (if connected) and again after every reconnect. */
    send(op) {
      ops.set(op.op, op);
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(op));
    },
    get connected() {
      return socket !== null && socket.readyState === WebSocket.OPEN;
    },
    close() {
      closed = true;
      clearTimeout(timer);
      socket?.close();
    },
  };
}
