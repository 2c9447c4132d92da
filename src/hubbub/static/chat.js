// The client side of PROTOCOL.md: joins (and rejoins with `since`), the outbox
// of own messages matched to their `ack` by `ref`, history pages, presence and
// typing. It turns server events into Store changes; views render the Store.
//
// Each room's own messages go out one at a time, oldest first, so that one
// refused for the rate limit is not overtaken by the next; after a refusal
// the outbox waits its `retry_after` and paces itself (see pacer.js).

import { Connection } from "./connection.js";
import { isBlank } from "./content.js";
import { Pacer, retryAfterMs } from "./pacer.js";
import { TYPING_EXPIRES_MS } from "./store.js";

const TYPING_SEND_EVERY_MS = 2000;
const HISTORY_PAGE = 50;
const RETRYABLE = new Set(["rate_limited", "unavailable"]);
/** `unavailable` (the store is down) is retried this often before the message shows as failed. */
const MAX_AUTO_RETRIES = 3;
const RATE_LIMITED_FALLBACK_MS = 1000;

/** A ref unique across tabs and reloads: the server dedupes by (username, room, ref). */
export function newRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function guestName() {
  return `User-${newRef().slice(0, 8)}`;
}

function asMessage(event) {
  const { id, room, from, content, timestamp } = event ?? {};
  if (!Number.isInteger(id) || typeof room !== "string") return null;
  if (typeof from !== "string" || typeof content !== "string") return null;
  return { id, room, from, content, timestamp: String(timestamp ?? "") };
}

export class Chat {
  /**
   * @param {import("./store.js").Store} store
   * @param {string} url the WebSocket URL
   * @param {{onError: (text: string) => void,
   *          onNewMessage: (room: import("./store.js").Room, message: object) => void}} callbacks
   */
  constructor(store, url, callbacks, { hasToken = false } = {}) {
    this.store = store;
    this.callbacks = callbacks;
    /** ref -> {kind, room} for events awaiting their ack or error on this connection. */
    this.inflight = new Map();
    this.lastTypingSent = new Map();
    this.pacer = new Pacer();
    this.pumpTimer = null;
    this.connection = new Connection(
      url,
      {
        onOpen: () => this.onOpen(),
        onEvent: (event) => this.onEvent(event),
        onStatus: (status) => {
          store.connection = status;
          if (status.state !== "connected") {
            for (const room of store.rooms.values()) room.forgetPresence();
          }
          store.changed();
        },
      },
      { hasToken },
    );
  }

  start() {
    this.connection.start();
  }

  /** The server fixes a connection's username at its first join, so a new name needs a new one. */
  rename(username) {
    this.store.username = username;
    this.connection.restart();
  }

  join(name) {
    let room = this.store.room(name);
    if (room) return room;
    room = this.store.addRoom(name);
    if (this.connection.isOpen) this.sendJoin(room);
    this.store.changed();
    return room;
  }

  leave(name) {
    if (!this.store.room(name)) return;
    this.request({ type: "leave", room: name }, "leave");
    this.store.removeRoom(name);
    this.store.changed();
  }

  /**
   * Shows the message at once as pending; it is (re)sent until acknowledged. Its content is
   * `text` exactly as typed: the server keeps a code block's indentation, so the page does too.
   */
  post(name, text) {
    const room = this.store.room(name);
    if (!room || isBlank(text)) return false;
    const entry = {
      ref: newRef(),
      room: name,
      content: text,
      createdAt: Date.now(),
      claimedBy: null,
      error: null,
      retries: 0,
    };
    room.pending.set(entry.ref, entry);
    this.lastTypingSent.delete(name);
    this.pump();
    this.store.changed();
    return true;
  }

  retry(name, ref) {
    const entry = this.store.room(name)?.pending.get(ref);
    if (!entry) return;
    entry.error = null;
    entry.retries = 0;
    this.pump();
    this.store.changed();
  }

  /** Sends each room's oldest waiting message, unless one is in flight or the pacer says wait. */
  pump() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = null;
    if (!this.connection.isOpen) return;
    for (const room of this.store.rooms.values()) {
      const head = [...room.pending.values()].find((entry) => !entry.error);
      if (!head || this.inflight.has(head.ref)) continue;
      const now = Date.now();
      const sendAt = this.pacer.nextSendAt(now);
      if (sendAt > now) {
        this.pumpTimer = setTimeout(() => this.pump(), sendAt - now);
        return;
      }
      this.sendPending(head);
      this.pacer.sent(now);
    }
  }

  typing(name) {
    const now = Date.now();
    if (now - (this.lastTypingSent.get(name) ?? -Infinity) < TYPING_SEND_EVERY_MS) return;
    if (this.connection.send({ type: "typing", room: name })) this.lastTypingSent.set(name, now);
  }

  loadOlder(name) {
    const room = this.store.room(name);
    if (!room || !room.historyLoaded || !room.hasMore || room.loadingHistory) return;
    if (!this.connection.isOpen) return;
    this.requestHistory(room, room.minId);
    this.store.changed();
  }

  onOpen() {
    this.inflight.clear();
    for (const room of this.store.rooms.values()) {
      room.loadingHistory = false;
      this.sendJoin(room);
    }
    // After the joins: the server handles one connection's events in order.
    this.pump();
    this.store.changed();
  }

  sendJoin(room) {
    const event = { type: "join", room: room.name, username: this.store.username };
    // Messages are contiguous from the first history page up to maxId, so asking for
    // everything after it misses nothing; duplicates are dropped by id anyway.
    if (room.historyLoaded || room.maxId !== null) event.since = room.maxId ?? 0;
    this.request(event, "join");
    if (!room.historyLoaded) this.requestHistory(room, null);
  }

  requestHistory(room, before) {
    const event = { type: "history", room: room.name, limit: HISTORY_PAGE };
    if (before !== null) event.before = before;
    if (this.request(event, "history")) room.loadingHistory = true;
  }

  sendPending(entry) {
    const event = { type: "message", room: entry.room, content: entry.content };
    this.request(event, "message", entry.ref);
  }

  request(event, kind, ref = newRef()) {
    if (!this.connection.send({ ...event, ref })) return false;
    this.inflight.set(ref, { kind, room: event.room });
    return true;
  }

  onEvent(event) {
    switch (event.type) {
      case "message":
        this.onMessage(event);
        break;
      case "history":
        this.onHistory(event);
        break;
      case "ack":
        this.onAck(event);
        break;
      case "error":
        this.onError(event);
        break;
      case "online_users":
        this.onOnlineUsers(event);
        break;
      case "user_joined":
        this.onUserJoined(event);
        break;
      case "user_left":
        this.onUserLeft(event);
        break;
      case "typing":
        this.onTyping(event);
        break;
      default:
        return; // welcome, and events of later protocol versions
    }
    this.store.changed();
  }

  onMessage(event) {
    const message = asMessage(event);
    const room = message && this.store.room(message.room);
    if (!room) return;
    const newest = room.maxId === null || message.id > room.maxId;
    if (!room.addMessage(message)) return;
    room.typing.delete(message.from);
    if (message.from === this.store.username) {
      room.claimPending(message);
    } else if (newest) {
      if (!this.isWatching(room)) room.unread += 1;
      this.callbacks.onNewMessage(room, message);
    }
  }

  onHistory(event) {
    const room = this.store.room(event.room);
    if (!room || !Array.isArray(event.messages)) return;
    for (const item of event.messages) {
      const message = asMessage(item);
      if (message && message.room === room.name) room.addMessage(message);
    }
    room.hasMore = event.has_more === true;
    room.historyLoaded = true;
    room.loadingHistory = false;
  }

  onAck(event) {
    const request = this.inflight.get(event.ref);
    if (!request) return;
    this.inflight.delete(event.ref);
    const room = this.store.room(request.room);
    if (!room) return;
    if (request.kind === "message") {
      const entry = room.pending.get(event.ref);
      if (!entry) return;
      room.pending.delete(event.ref);
      this.learnName(room.messages.get(event.id));
      this.pump();
      // A retry of a message stored before a disconnect gets no broadcast of its own:
      // show it from the outbox until the replayed original (same id) replaces it.
      if (Number.isInteger(event.id) && !room.messages.has(event.id)) {
        room.addMessage({
          id: event.id,
          room: room.name,
          from: this.store.username,
          content: entry.content,
          timestamp: new Date(entry.createdAt).toISOString(),
          provisional: true,
        });
      }
    } else if (request.kind === "join" && event.reset === true) {
      // The server's store went back (restored from a backup, or a memory store restarted):
      // the ids the page holds now name other messages or none.
      room.forgetMessages();
      this.requestHistory(room, null);
      this.callbacks.onError(`The server's history of #${room.name} changed; it was reloaded.`);
    } else if (request.kind === "join" && event.truncated === true) {
      this.callbacks.onError(
        `Some messages in #${room.name} from while you were away are no longer kept.`,
      );
    } else if (request.kind === "history") {
      room.loadingHistory = false;
    }
  }

  onError(event) {
    const text = typeof event.message === "string" ? event.message : String(event.code);
    const request = event.ref === undefined ? null : this.inflight.get(event.ref);
    if (!request) {
      // Unanswerable errors: a dropped `typing` is not worth a word to the user.
      if (event.code !== "rate_limited") this.callbacks.onError(text);
      return;
    }
    this.inflight.delete(event.ref);
    const room = this.store.room(request.room);
    if (!room) return;
    const retryable = RETRYABLE.has(event.code);
    if (request.kind === "message") {
      const entry = room.pending.get(event.ref);
      if (!entry) return;
      const now = Date.now();
      if (event.code === "rate_limited") {
        this.pacer.refused(retryAfterMs(event) ?? RATE_LIMITED_FALLBACK_MS, now);
      } else if (retryable && entry.retries < MAX_AUTO_RETRIES) {
        entry.retries += 1;
        this.pacer.pause(1000 * 2 ** entry.retries, now);
      } else {
        entry.error = text;
      }
      this.pump();
    } else if (request.kind === "join" && retryable) {
      const delay = retryAfterMs(event) ?? RATE_LIMITED_FALLBACK_MS;
      setTimeout(() => {
        if (this.store.room(room.name) === room && this.connection.isOpen) this.sendJoin(room);
      }, delay);
    } else if (request.kind === "join") {
      this.store.removeRoom(room.name);
      this.callbacks.onError(`Could not join #${room.name}: ${text}`);
    } else if (request.kind === "history") {
      room.loadingHistory = false;
      if (!retryable) room.hasMore = false;
    }
  }

  onOnlineUsers(event) {
    const room = this.store.room(event.room);
    if (!room || !Array.isArray(event.users)) return;
    room.online = event.users.filter((name) => typeof name === "string");
    room.onlineCount = Number.isInteger(event.count) ? event.count : room.online.length;
    room.presenceKnown = true;
  }

  onUserJoined(event) {
    const room = this.store.room(event.room);
    if (!room || typeof event.username !== "string" || room.online.includes(event.username)) return;
    room.online = [...room.online, event.username].sort();
    room.onlineCount += 1;
  }

  onUserLeft(event) {
    const room = this.store.room(event.room);
    if (!room || !room.online.includes(event.username)) return;
    room.online = room.online.filter((name) => name !== event.username);
    room.onlineCount = Math.max(room.online.length, room.onlineCount - 1);
    room.typing.delete(event.username);
  }

  onTyping(event) {
    const room = this.store.room(event.room);
    if (!room || typeof event.username !== "string") return;
    if (event.username === this.store.username) return;
    room.typing.set(event.username, Date.now() + TYPING_EXPIRES_MS);
    setTimeout(() => {
      if (room.typing.get(event.username) <= Date.now()) room.typing.delete(event.username);
      this.store.changed();
    }, TYPING_EXPIRES_MS + 50);
  }

  /**
   * The `from` of a message acked to this connection is the name the server knows it by
   * (a sign-in token's, not the one the page sent): it wins, everywhere on the page.
   */
  learnName(message) {
    if (message && !message.provisional && message.from !== this.store.username) {
      this.store.username = message.from;
    }
  }

  isWatching(room) {
    return this.store.activeRoom === room.name && document.visibilityState === "visible";
  }
}
