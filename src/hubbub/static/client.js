/**
 * Hubbub's browser client: one WebSocket to a Hubbub server that stays up, and
 * the rooms, positions and outbox that make a dropped connection lose nothing
 * and repeat nothing. The chat page is built on it; so can any other front-end.
 * It is one ES module with no dependencies, served by Hubbub at `/client.js`.
 *
 * ```js
 * import { HubbubClient } from "https://chat.example.com/client.js";
 *
 * const client = new HubbubClient("https://chat.example.com", { username: "alice" });
 * client.on("message", (message) => console.log(message.room, message.from, message.content));
 * client.on("state", ({ state }) => console.log("connection:", state));
 * client.connect();
 * await client.join("general");
 * const { id } = await client.send("general", "hello", { data: { mood: "fine" } });
 * ```
 *
 * What it does for you (the wire contract is PROTOCOL.md, `docs/protocol.md`):
 * - Reconnects after any drop (a restart, 1001 going away, 1013 slow consumer,
 *   a dead network noticed by an idle `ping`) with exponential backoff and
 *   jitter, at once when the browser comes back online, and not at all when
 *   the server refused the upgrade for a reason retrying cannot change (401,
 *   403) unless `token` is a function, which is asked for a fresh token before
 *   every connection.
 * - Rejoins every room with `since` = the last message id it saw there, so
 *   the messages posted while it was away are replayed: each `message` event
 *   is emitted once, in id order per room.
 * - Keeps every message `send` was given until the server acknowledges it, and
 *   sends it again with the same `ref` after a reconnection: the server stores
 *   it once. A room's messages go out one at a time, in order; after a
 *   `rate_limited` refusal it waits the error's `retry_after` and then spaces
 *   messages by it; `unavailable` is retried a few times.
 * - A rejoin whose ack says `reset` (the server's store went back to an older
 *   state): the ids it remembered for that room are forgotten and a `reset`
 *   event says so.
 *
 * @module hubbub/client
 */

const RECONNECT_DELAY_MS = 500;
const MAX_RECONNECT_DELAY_MS = 30_000;
/** A connection that lived this long was healthy: the next failure starts the backoff over. */
const STABLE_AFTER_MS = 5_000;
const IDLE_PING_AFTER_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const HEARTBEAT_CHECK_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 5_000;
const TYPING_EVERY_MS = 2_000;
const UNAVAILABLE_RETRIES = 3;
/** How long after the last `rate_limited` messages stay spaced by its `retry_after`. */
export const PACE_MEMORY_MS = 10_000;
/** Waited after a retryable refusal that says nothing about when to retry. */
const RETRY_FALLBACK_MS = 1_000;
const RETRYABLE = new Set(["rate_limited", "unavailable"]);
/** Close codes of the contract (PROTOCOL.md, "Close codes the server uses"). */
const CLOSE_POLICY = 1008;
const CLOSE_TOO_BIG = 1009;

/**
 * A refusal: the server's `error` event (`code` is one of the contract's error
 * codes), or one of the client's own, whose codes are `not_in_room` (send to a
 * room not joined), `left` (the room was left before the event was
 * answered), `closed` (`close()` was called), `disconnected` (a `history`
 * request was cut off by a drop) and `too_big` (the server closed the
 * connection with 1009 after this message: it is not sent again).
 */
export class HubbubError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{retryAfter?: number|null, ref?: string|number, room?: string, request?: string,
   *          event?: object}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "HubbubError";
    /** @type {string} */
    this.code = code;
    /** Seconds until the server would accept the event (`rate_limited`), or null. */
    this.retryAfter = details.retryAfter ?? null;
    /** The `ref` of the refused event, if it had one. */
    this.ref = details.ref;
    /** The room the refused event was about, when known. */
    this.room = details.room;
    /** What was refused: "join", "message", "history", "leave" or undefined (unsolicited). */
    this.request = details.request;
    /** The server's `error` event as received, when the refusal is the server's. */
    this.event = details.event;
  }

  /** @param {object} event a server `error` event */
  static fromEvent(event, request, room) {
    const message = typeof event.message === "string" ? event.message : String(event.code);
    const seconds = retryAfterMs(event);
    return new HubbubError(String(event.code), message, {
      retryAfter: seconds === null ? null : seconds / 1000,
      ref: event.ref,
      room: room ?? (typeof event.room === "string" ? event.room : undefined),
      request,
      event,
    });
  }
}

/**
 * Delay before reconnection attempt `attempt` (0-based): doubling from `base`
 * up to `max`, and only the upper half of it fixed, so that a restarted server
 * is not hit by every client in the same instant.
 */
export function backoffDelay(
  attempt,
  random = Math.random,
  base = RECONNECT_DELAY_MS,
  max = MAX_RECONNECT_DELAY_MS,
) {
  const ceiling = Math.min(max, base * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * When the next message may go out, from what the server's `rate_limited`
 * errors said (the rule of hubbub.reconnecting.Pacer): nothing before the
 * latest `retry_after`, and for a while after a refusal messages are spaced by
 * the longest `retry_after` seen, which is the server's time per message. Only
 * waiting would not do: sending again at once after each accepted message is
 * refused every other time, and the server closes a connection that keeps
 * being refused (1008).
 */
export class Pacer {
  constructor() {
    this.resumeAt = 0;
    this.interval = 0;
    this.pacingUntil = -Infinity;
    this.lastSent = -Infinity;
  }

  refused(retryAfterMs, now) {
    this.resumeAt = Math.max(this.resumeAt, now + retryAfterMs);
    const kept = now < this.pacingUntil ? this.interval : 0;
    this.interval = Math.max(kept, retryAfterMs);
    this.pacingUntil = now + PACE_MEMORY_MS;
  }

  /** Sends nothing for `delayMs` (the server is unavailable), without pacing after. */
  pause(delayMs, now) {
    this.resumeAt = Math.max(this.resumeAt, now + delayMs);
  }

  sent(now) {
    this.lastSent = now;
  }

  nextSendAt(now) {
    if (now < this.pacingUntil) return Math.max(this.resumeAt, this.lastSent + this.interval);
    return this.resumeAt;
  }
}

/** An error event's `retry_after` in milliseconds, or null when it has none. */
export function retryAfterMs(event) {
  const seconds = event?.retry_after;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0
    ? seconds * 1000
    : null;
}

/** A random ref, unique across tabs and reloads: the server dedupes by (username, room, ref). */
export function newRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * The WebSocket address for `url`: `ws:`/`wss:` as given; `http:`/`https:`
 * become `ws:`/`wss:`, and a bare origin (path `/`) gets Hubbub's `/ws`.
 * Without `url`, the `/ws` of the server this module was loaded from.
 */
export function socketUrl(url) {
  const address = new URL(url ?? "/ws", import.meta.url);
  if (address.protocol === "http:") address.protocol = "ws:";
  else if (address.protocol === "https:") address.protocol = "wss:";
  if (address.pathname === "/") address.pathname = "/ws";
  return address;
}

/**
 * Asks the socket's address over plain HTTP why an upgrade failed. A browser
 * never shows a page the status of a refused upgrade, but the server runs the
 * same checks on a plain GET and answers 401, 429 or 503 with the reason in a
 * JSON body, or 426 when they all pass. Null when it cannot be reached (or,
 * from another origin, read).
 */
async function probeUpgrade(address) {
  const http = new URL(address);
  http.protocol = http.protocol === "wss:" ? "https:" : "http:";
  let response;
  try {
    response = await fetch(http.href, {
      cache: "no-store",
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
  } catch {
    return null;
  }
  let reason = "";
  try {
    const body = await response.json();
    if (typeof body?.error === "string") reason = body.error;
  } catch {
    // not one of the server's refusals
  }
  return { status: response.status, reason };
}

/** Takes a message out of its room's outbox; false when it was no longer there. */
function removeEntry(entry) {
  const index = entry.room.outbox.indexOf(entry);
  if (index < 0) return false;
  entry.room.outbox.splice(index, 1);
  return true;
}

function maxId(messages) {
  let found = null;
  for (const message of messages) {
    if (Number.isInteger(message?.id) && (found === null || message.id > found)) found = message.id;
  }
  return found;
}

/**
 * @typedef {object} ClientOptions
 * @property {string|null} [username] the name to join with; the server fixes a
 *   connection's name at its first join (a guest name when absent) and, with a
 *   sign-in token, takes the token's instead.
 * @property {string|(() => string|Promise<string>)|null} [token] a sign-in JWT
 *   for a server with an auth secret, or a function returning a fresh one,
 *   called before every connection.
 * @property {number} [reconnectDelay] the first reconnection delay, ms (500).
 * @property {number} [maxReconnectDelay] the longest one, ms (30 000).
 * @property {number} [unavailableRetries] times a message refused as
 *   `unavailable` is sent again before `send` rejects (3).
 * @property {number} [typingEvery] `typing` sends at most one event per room this often, ms (2000).
 */

/**
 * @typedef {object} ConnectionState
 * @property {"idle"|"connecting"|"connected"|"reconnecting"|"offline"|"refused"|"closed"} state
 *   `reconnecting`: waiting (until `retryAt`) or trying again; `offline`: the
 *   browser says it is offline and the client waits for it to come back;
 *   `refused`: the server refused the upgrade (see `refusal`) and the client
 *   stopped until `reconnect()`.
 * @property {number|null} retryAt when the next attempt starts (ms since the epoch), if waiting.
 * @property {{status: number, reason: string, repeats: number}|null} refusal
 *   why the last connections never opened, as the server answered a plain GET
 *   of the socket's address (`repeats`: that many in a row); null once one opens.
 * @property {number|null} closeCode the close code of the connection that was lost, if any.
 */

/**
 * A connection to a Hubbub server and the rooms it is in.
 *
 * Events (subscribe with `on`): `message` (each room's messages once, in id
 * order, `data` included), `user_joined`, `user_left`, `online_users`,
 * `typing`, `welcome` and any other server event by its `type`, with the
 * server's event as it came; `state` ({@link ConnectionState}); `joined`
 * (`{room, replayed, truncated, reset, rejoin}` for every join and rejoin the
 * server accepted); `reset` (`{room}`: the ids seen in that room mean nothing
 * any more; the messages that follow start over from the room's current
 * position); `error` (a {@link HubbubError} that no promise reports: an event
 * refused without a `ref`, or a room whose rejoin was refused, which the
 * client then leaves: `error.request === "join"`); `event` (every server
 * event, before anything else).
 */
export class HubbubClient {
  /**
   * @param {string|URL} [url] the server (`https://host`) or its socket
   *   (`wss://host/ws`); by default the server this module came from.
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    this.url = socketUrl(url);
    /** @type {string|null} */
    this.username = options.username ?? null;
    this.token = options.token ?? null;
    this.reconnectDelay = options.reconnectDelay ?? RECONNECT_DELAY_MS;
    this.maxReconnectDelay = options.maxReconnectDelay ?? MAX_RECONNECT_DELAY_MS;
    this.unavailableRetries = options.unavailableRetries ?? UNAVAILABLE_RETRIES;
    this.typingEvery = options.typingEvery ?? TYPING_EVERY_MS;
    /** @type {ConnectionState} */
    this.status = { state: "idle", retryAt: null, refusal: null, closeCode: null };
    /** The server's `connection_id` for the current connection (from `welcome`). */
    this.connectionId = null;
    /** How many connections opened so far (1 + reconnections). */
    this.connections = 0;
    this.handlers = new Map();
    /** name -> room state, in joining order. */
    this.joined = new Map();
    /** ref -> {kind, room, ...} for the events sent on this connection awaiting an answer. */
    this.inflight = new Map();
    this.pacer = new Pacer();
    this.pumpTimer = null;
    this.socket = null;
    this.stopped = true;
    this.attempt = 0;
    /** Bumped for every connection attempt: late answers of older ones are ignored. */
    this.generation = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.heartbeatTimer = null;
    this.openedAt = 0;
    this.lastReceivedAt = 0;
    this.pingSentAt = null;
    this.refusal = null;
    this.closeCode = null;
    this.listening = false;
    /** The address (token included) of the latest connection attempt. */
    this.address = this.url;
  }

  // --- what users call -------------------------------------------------------------

  /** True while a connection is open. */
  get connected() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  /** The names of the rooms joined (or being joined), in joining order. */
  get rooms() {
    return [...this.joined.keys()];
  }

  /**
   * Subscribes `handler` to events of `type` (see the class); returns a function that
   * unsubscribes it.
   * @param {string} type
   * @param {(payload: any) => void} handler
   * @returns {() => void}
   */
  on(type, handler) {
    let set = this.handlers.get(type);
    if (!set) {
      set = new Set();
      this.handlers.set(type, set);
    }
    set.add(handler);
    return () => this.off(type, handler);
  }

  /** Unsubscribes a handler given to `on`. */
  off(type, handler) {
    this.handlers.get(type)?.delete(handler);
  }

  /** Starts connecting (and staying connected); joins made before are sent once it opens. */
  connect() {
    if (!this.stopped) return this;
    this.stopped = false;
    this.listen();
    this.open();
    return this;
  }

  /** Connects now: after a refusal, or instead of waiting out the backoff. */
  reconnect() {
    if (this.stopped && this.status.state !== "refused") return this;
    this.stopped = false;
    this.attempt = 0;
    if (!this.socket) this.open();
    return this;
  }

  /**
   * Drops the connection and connects again at once, e.g. with a new `username`
   * (the server fixes a connection's name at its first join).
   * @param {string} [username]
   */
  restart(username = this.username) {
    this.username = username;
    if (this.stopped && this.status.state !== "refused") return this;
    this.stopped = false;
    this.attempt = 0;
    this.refusal = null;
    this.abandonSocket(null);
    this.open();
    return this;
  }

  /** Closes the connection for good; whatever is still waiting is rejected (`closed`). */
  close() {
    this.stopped = true;
    this.generation += 1;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    this.abandonSocket(null);
    const closed = () => new HubbubError("closed", "the client was closed");
    for (const room of this.joined.values()) this.dropRoom(room, closed());
    this.joined.clear();
    this.setState("closed");
  }

  /**
   * Joins `room`, now or as soon as connected, and again after every reconnection
   * (with `since`). Resolves with the server's `ack` of the first join; rejects with
   * a {@link HubbubError} when the server refuses it (`invalid_field`,
   * `unauthorized`, `room_full`...). `rate_limited` and `unavailable` are retried.
   *
   * @param {string} room
   * @param {{since?: number, watch?: boolean}} [options] `since`: replay the stored
   *   messages after this id (the last one you have); without it the client
   *   asks the server for the room's newest id, so that a later rejoin misses
   *   nothing. `watch`: join as a watcher (protocol 1.1): messages only, no
   *   presence, cannot post.
   * @returns {Promise<object>} the join's `ack`
   */
  join(room, { since, watch = false } = {}) {
    const existing = this.joined.get(room);
    if (existing) return existing.ready;
    const state = {
      name: room,
      watch: Boolean(watch),
      /** The last message id emitted in this room, or null. */
      lastId: Number.isInteger(since) ? since : null,
      /** The room's newest id as a `history` page showed it (when nothing was emitted). */
      floor: null,
      acked: false,
      ready: null,
      settle: null,
      /** Own messages not yet acknowledged, oldest first; only the first is ever in flight. */
      outbox: [],
      typingSentAt: -Infinity,
    };
    state.ready = new Promise((resolve, reject) => {
      state.settle = { resolve, reject };
    });
    this.joined.set(room, state);
    if (this.connected) this.sendJoin(state);
    return state.ready;
  }

  /**
   * Leaves `room`. Its unacknowledged messages are rejected (`left`). Resolves with
   * the server's ack, or null when there was no connection to tell.
   * @param {string} room
   * @returns {Promise<object|null>}
   */
  leave(room) {
    const state = this.joined.get(room);
    if (!state) return Promise.resolve(null);
    this.joined.delete(room);
    this.dropRoom(state, new HubbubError("left", `left #${room}`, { room }));
    if (!this.connected) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.request({ type: "leave", room }, { kind: "leave", room: state, resolve });
    });
  }

  /**
   * Posts a message to a joined room. It is kept until the server acknowledges it
   * and sent again, with the same `ref`, after a reconnection (stored once).
   * Resolves with the `ack` (`{type: "ack", ref, id}`); rejects with a
   * {@link HubbubError}: the server's refusal (`invalid_field`, `not_in_room`,
   * `unavailable` after `unavailableRetries` tries...), or `left`, `closed`,
   * `too_big`, `not_in_room` (not joined here). `rate_limited` is waited out.
   *
   * @param {string} room
   * @param {string} content the human-readable text (required by the server)
   * @param {{data?: any, ref?: string|number}} [options] `data`: any JSON value,
   *   delivered unchanged with the message (protocol 1.1). `ref`: your own id for
   *   it, e.g. to resend it after a page reload; a send with the ref of a message
   *   still waiting in that room returns that message's promise. Acks name only the
   *   ref, so refs must differ between the messages waiting in all rooms.
   * @returns {Promise<object>}
   */
  send(room, content, { data, ref } = {}) {
    const state = this.joined.get(room);
    if (!state) {
      return Promise.reject(
        new HubbubError("not_in_room", `join #${room} before sending to it`, {
          room,
          request: "message",
        }),
      );
    }
    const key = ref ?? newRef();
    const waiting = state.outbox.find((entry) => entry.ref === key);
    if (waiting) return waiting.done;
    const entry = { ref: key, room: state, content, data, inflight: false, retries: 0, size: 0 };
    entry.done = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    state.outbox.push(entry);
    state.typingSentAt = -Infinity;
    this.pump();
    return entry.done;
  }

  /**
   * Tells the room's other members that you are typing: at most one event per
   * `typingEvery` per room, nothing while disconnected. Returns whether one was sent.
   * @param {string} room
   */
  typing(room) {
    const state = this.joined.get(room);
    const now = Date.now();
    if (!state || !this.connected || now - state.typingSentAt < this.typingEvery) return false;
    this.sendFrame({ type: "typing", room });
    state.typingSentAt = now;
    return true;
  }

  /**
   * A page of a room's stored messages, newest first by default: resolves with the
   * server's `history` event (`{room, messages, has_more}`, messages oldest first).
   * Rejects with `disconnected` when there is no connection (or it drops).
   * @param {string} room
   * @param {{before?: number, limit?: number}} [options]
   * @returns {Promise<{room: string, messages: object[], has_more: boolean}>}
   */
  history(room, { before, limit } = {}) {
    if (!this.connected) {
      return Promise.reject(
        new HubbubError("disconnected", "not connected", { room, request: "history" }),
      );
    }
    const event = { type: "history", room };
    if (before !== undefined) event.before = before;
    if (limit !== undefined) event.limit = limit;
    return new Promise((resolve, reject) => {
      this.request(event, {
        kind: "history",
        room: this.joined.get(room) ?? null,
        name: room,
        newest: before === undefined,
        resolve,
        reject,
      });
    });
  }

  /**
   * The id a rejoin of `room` would ask to replay after: the last message id seen
   * there, or null when unknown.
   * @param {string} room
   */
  position(room) {
    const state = this.joined.get(room);
    return state ? this.positionOf(state) : null;
  }

  // --- rooms, outbox, answers ------------------------------------------------------

  positionOf(state) {
    return state.lastId ?? state.floor;
  }

  sendJoin(state) {
    const event = { type: "join", room: state.name };
    if (this.username) event.username = this.username;
    const since = this.positionOf(state);
    if (since !== null) event.since = since;
    if (state.watch) event.watch = true;
    this.request(event, { kind: "join", room: state, rejoin: state.acked });
    if (since === null) this.requestPosition(state);
  }

  /**
   * Asks for the room's newest message, right after joining it: messages after it
   * arrive live, so a rejoin with it as `since` misses none.
   */
  requestPosition(state) {
    this.request(
      { type: "history", room: state.name, limit: 1 },
      { kind: "position", room: state, name: state.name, newest: true },
    );
  }

  /** Rejects what waits on a room that is no longer joined. */
  dropRoom(state, error) {
    for (const entry of state.outbox) entry.reject(error);
    state.outbox = [];
    if (!state.acked) state.settle.reject(error);
    // A rejection nobody asked for (the join's promise, unawaited) is not an error.
    state.ready.catch(() => {});
  }

  /** Sends each room's oldest waiting message, unless one is in flight or the pacer says wait. */
  pump() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    if (!this.connected) return;
    for (const state of this.joined.values()) {
      const head = state.outbox[0];
      if (!head || head.inflight) continue;
      const now = Date.now();
      const sendAt = this.pacer.nextSendAt(now);
      if (sendAt > now) {
        this.pumpTimer = setTimeout(() => this.pump(), sendAt - now);
        return;
      }
      const event = { type: "message", room: state.name, content: head.content };
      if (head.data !== undefined) event.data = head.data;
      head.size = this.request(event, { kind: "message", room: state, entry: head }, head.ref);
      head.inflight = true;
      this.pacer.sent(now);
    }
  }

  /** Sends `event` with a ref and remembers what to do with its answer; returns the frame's size. */
  request(event, meta, ref = `${meta.kind[0]}-${newRef()}`) {
    this.inflight.set(ref, meta);
    return this.sendFrame({ ...event, ref });
  }

  sendFrame(event) {
    const frame = JSON.stringify(event);
    this.socket.send(frame);
    return frame.length;
  }

  receive(data) {
    this.lastReceivedAt = Date.now();
    this.pingSentAt = null;
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (!event || typeof event !== "object" || typeof event.type !== "string") return;
    this.emit("event", event);
    switch (event.type) {
      case "message":
        this.onMessage(event);
        break;
      case "ack":
        this.onAck(event);
        break;
      case "error":
        this.onError(event);
        break;
      case "history":
        this.onHistory(event);
        break;
      case "pong":
        break;
      case "welcome":
        this.connectionId = event.connection_id ?? null;
        this.emit("welcome", event);
        break;
      default:
        // Presence, typing, and the events of later protocol versions: as they came,
        // unless they are about a room this client has left.
        if (typeof event.room === "string" && !this.joined.has(event.room)) return;
        this.emit(event.type, event);
    }
  }

  onMessage(event) {
    const state = this.joined.get(event.room);
    if (!state || !Number.isInteger(event.id)) return;
    // Ids increase per room and the server delivers them in order: one not above the
    // last is a repeat (a replay overlapping what was already seen).
    if (state.lastId !== null && event.id <= state.lastId) return;
    state.lastId = event.id;
    this.emit("message", event);
  }

  /** The page of a `history` request: it precedes that request's ack, in request order. */
  onHistory(event) {
    for (const request of this.inflight.values()) {
      if ((request.kind === "history" || request.kind === "position") && !request.page) {
        if (request.name !== event.room) continue;
        request.page = event;
        return;
      }
    }
  }

  onAck(event) {
    const request = this.inflight.get(event.ref);
    if (!request) return;
    this.inflight.delete(event.ref);
    const state = request.room;
    const current = state !== null && this.joined.get(state.name) === state;
    switch (request.kind) {
      case "join":
        if (current) this.onJoined(state, event, request.rejoin);
        break;
      case "message":
        if (!current || !removeEntry(request.entry)) return;
        request.entry.resolve(event);
        this.pump();
        break;
      case "history":
      case "position": {
        const page = request.page ?? { type: "history", room: request.name, messages: [] };
        if (current && request.newest && Array.isArray(page.messages)) {
          const newest = maxId(page.messages) ?? 0;
          state.floor = Math.max(state.floor ?? 0, newest);
        }
        request.resolve?.(page);
        break;
      }
      case "leave":
        request.resolve(event);
        break;
    }
  }

  onJoined(state, ack, rejoin) {
    if (ack.reset === true) {
      // The server's store went back (restored from a backup, a memory store restarted):
      // the ids remembered for this room now name other messages or none.
      state.lastId = null;
      state.floor = null;
      this.requestPosition(state);
      this.emit("reset", { room: state.name });
    }
    const first = !state.acked;
    state.acked = true;
    if (first) state.settle.resolve(ack);
    this.emit("joined", {
      room: state.name,
      replayed: ack.replayed ?? 0,
      truncated: ack.truncated === true,
      reset: ack.reset === true,
      rejoin,
    });
  }

  onError(event) {
    const request = event.ref === undefined ? undefined : this.inflight.get(event.ref);
    if (!request) {
      this.emit("error", HubbubError.fromEvent(event));
      return;
    }
    this.inflight.delete(event.ref);
    const state = request.room;
    const current = state !== null && this.joined.get(state.name) === state;
    const error = HubbubError.fromEvent(event, request.kind, request.name ?? state?.name);
    const retryable = RETRYABLE.has(error.code);
    switch (request.kind) {
      case "join":
        if (!current) return;
        if (retryable) {
          const generation = this.generation;
          setTimeout(() => {
            const still = this.joined.get(state.name) === state;
            if (still && generation === this.generation && this.connected) this.sendJoin(state);
          }, retryAfterMs(event) ?? RETRY_FALLBACK_MS);
          return;
        }
        this.joined.delete(state.name);
        if (state.acked) this.emit("error", error);
        this.dropRoom(state, error);
        return;
      case "message":
        if (current) this.onMessageRefused(request.entry, error);
        return;
      case "history":
        request.reject(error);
        return;
      case "position":
        return; // the position stays unknown: a later history page or message tells it
      case "leave":
        request.resolve(null);
        return;
    }
  }

  onMessageRefused(entry, error) {
    const now = Date.now();
    entry.inflight = false;
    if (error.code === "rate_limited") {
      this.pacer.refused((error.retryAfter ?? RETRY_FALLBACK_MS / 1000) * 1000, now);
    } else if (error.code === "unavailable" && entry.retries < this.unavailableRetries) {
      entry.retries += 1;
      this.pacer.pause(RETRY_FALLBACK_MS * 2 ** entry.retries, now);
    } else if (removeEntry(entry)) {
      entry.reject(error);
    }
    this.pump();
  }

  emit(type, payload) {
    const set = this.handlers.get(type);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(payload);
      } catch (error) {
        // A handler's bug must not break the client: report it, and carry on.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }

  // --- the connection --------------------------------------------------------------

  listen() {
    if (this.listening || typeof globalThis.addEventListener !== "function") return;
    this.listening = true;
    globalThis.addEventListener("online", () => this.onBrowserOnline());
    globalThis.addEventListener("offline", () => this.onBrowserOffline());
    globalThis.document?.addEventListener("visibilitychange", () => this.onVisible());
  }

  async open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.generation += 1;
    const generation = this.generation;
    if (globalThis.navigator?.onLine === false) {
      this.setState("offline");
      return;
    }
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const address = new URL(this.url);
    try {
      const token = typeof this.token === "function" ? await this.token() : this.token;
      if (token) address.searchParams.set("token", token);
    } catch {
      if (generation === this.generation && !this.stopped) this.scheduleRetry();
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    const socket = new WebSocket(address.href);
    this.socket = socket;
    this.address = address;
    this.connectTimer = setTimeout(() => this.onClosed(null), CONNECT_TIMEOUT_MS);
    socket.onopen = () => this.onOpen();
    socket.onmessage = (frame) => this.receive(frame.data);
    socket.onclose = (close) => this.onClosed(close.code);
  }

  onOpen() {
    clearTimeout(this.connectTimer);
    this.openedAt = Date.now();
    this.lastReceivedAt = this.openedAt;
    this.pingSentAt = null;
    this.refusal = null;
    this.closeCode = null;
    this.connections += 1;
    this.heartbeatTimer = setInterval(() => this.checkHeartbeat(), HEARTBEAT_CHECK_MS);
    // The server handles a connection's events in order: the joins come first, then
    // whatever the state's handlers ask, then the outbox.
    for (const state of this.joined.values()) this.sendJoin(state);
    this.setState("connected");
    this.pump();
  }

  checkHeartbeat() {
    const now = Date.now();
    if (this.pingSentAt !== null) {
      // A half-open TCP connection never fires `close` by itself: give up on it.
      if (now - this.pingSentAt > PONG_TIMEOUT_MS) this.onClosed(null);
      return;
    }
    if (now - this.lastReceivedAt >= IDLE_PING_AFTER_MS) this.ping();
  }

  ping() {
    if (this.pingSentAt === null && this.connected) {
      this.sendFrame({ type: "ping" });
      this.pingSentAt = Date.now();
    }
  }

  onClosed(code) {
    const neverOpened = this.openedAt === 0;
    const wasStable = !neverOpened && Date.now() - this.openedAt >= STABLE_AFTER_MS;
    this.abandonSocket(code);
    if (this.stopped) return;
    // Closed for abuse (1008): the backoff keeps growing however long it lasted.
    if (wasStable && code !== CLOSE_POLICY) this.attempt = 0;
    if (globalThis.navigator?.onLine === false) this.setState("offline");
    else if (neverOpened) this.diagnose();
    else this.scheduleRetry();
  }

  /** Asks the server why the upgrade failed, then retries or, when that cannot help, stops. */
  async diagnose() {
    const generation = this.generation;
    this.setState("reconnecting");
    const answer = await probeUpgrade(this.address);
    if (generation !== this.generation || this.stopped || this.socket) return;
    const repeats = answer && this.refusal?.status === answer.status ? this.refusal.repeats + 1 : 1;
    this.refusal = answer && { ...answer, repeats };
    // A token the server refused stays refused, unless a function can make a fresh one.
    const hopeless =
      answer !== null &&
      (answer.status === 403 || (answer.status === 401 && typeof this.token !== "function"));
    if (hopeless) {
      this.stopped = true;
      this.setState("refused");
    } else {
      this.scheduleRetry();
    }
  }

  scheduleRetry() {
    const delay = backoffDelay(
      this.attempt,
      Math.random,
      this.reconnectDelay,
      this.maxReconnectDelay,
    );
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState("reconnecting", Date.now() + delay);
  }

  /** Forgets the socket; what was in flight on it is sent again (or given up) on the next. */
  abandonSocket(code) {
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.pumpTimer);
    this.heartbeatTimer = null;
    this.openedAt = 0;
    this.closeCode = code;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      if (socket.readyState <= WebSocket.OPEN) socket.close();
    }
    const requests = [...this.inflight.values()];
    this.inflight.clear();
    let largest = null;
    for (const request of requests) {
      if (request.kind === "message") {
        request.entry.inflight = false;
        if (largest === null || request.entry.size > largest.size) largest = request.entry;
      } else if (request.kind === "history") {
        request.reject(
          new HubbubError("disconnected", "the connection dropped", {
            room: request.name,
            request: "history",
          }),
        );
      } else if (request.kind === "leave") {
        request.resolve(null);
      }
    }
    if (code === CLOSE_TOO_BIG && largest !== null && removeEntry(largest)) {
      // Sending it again would only close the next connection too.
      largest.reject(
        new HubbubError("too_big", "the server closed the connection: message too big (1009)", {
          ref: largest.ref,
          room: largest.room.name,
          request: "message",
        }),
      );
    }
  }

  onBrowserOnline() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.open();
  }

  onBrowserOffline() {
    if (this.connected) {
      this.ping(); // the link may well survive (a local server); let the heartbeat decide
    } else if (!this.stopped && !this.socket) {
      clearTimeout(this.retryTimer);
      this.generation += 1;
      this.setState("offline");
    }
  }

  onVisible() {
    if (globalThis.document?.visibilityState !== "visible" || this.stopped) return;
    if (this.connected && Date.now() - this.lastReceivedAt > HEARTBEAT_CHECK_MS) this.ping();
    else if (!this.socket) this.open();
  }

  setState(state, retryAt = null) {
    this.status = { state, retryAt, refusal: this.refusal, closeCode: this.closeCode };
    this.emit("state", this.status);
  }
}

/**
 * Creates a client and starts connecting: `connect(url, {username, token})`.
 * @param {string|URL} [url]
 * @param {ClientOptions} [options]
 * @returns {HubbubClient}
 */
export function connect(url, options) {
  return new HubbubClient(url, options).connect();
}
