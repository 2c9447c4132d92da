// The chat page's side of the protocol, on top of client.js (which keeps the
// connection up, rejoins with `since` and resends unacknowledged messages with
// their `ref`): the outbox as the reader sees it (pending, failed, retried),
// history pages, presence and typing. It turns the client's events into Store
// changes; views render the Store.

import { HubbubClient, newRef } from "./client.js";
import { isBlank } from "./content.js";
import { passedChecks, refusalProblem } from "./problems.js";
import { TYPING_EXPIRES_MS } from "./store.js";

const HISTORY_PAGE = 50;
const RETRYABLE = new Set(["rate_limited", "unavailable", "disconnected"]);
/** Refusals that only say the page itself gave up on the event. */
const WITHDRAWN = new Set(["left", "closed"]);

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
   * @param {string|null} token the sign-in token of the page's URL
   * @param {{onError: (text: string) => void,
   *          onNewMessage: (room: import("./store.js").Room, message: object) => void}} callbacks
   */
  constructor(store, token, callbacks) {
    this.store = store;
    this.callbacks = callbacks;
    this.hasToken = Boolean(token);
    this.client = new HubbubClient(location.origin, { token });
    const on = (type, handler) =>
      this.client.on(type, (event) => {
        handler.call(this, event);
        store.changed();
      });
    on("state", this.onState);
    on("message", this.onMessage);
    on("reset", this.onReset);
    on("joined", this.onJoined);
    on("error", this.onClientError);
    on("online_users", this.onOnlineUsers);
    on("user_joined", this.onUserJoined);
    on("user_left", this.onUserLeft);
    on("typing", this.onTyping);
  }

  start() {
    this.client.username = this.store.username;
    this.client.connect();
  }

  /** Connects now rather than at the end of the backoff (the status bar's button). */
  reconnect() {
    this.client.reconnect();
  }

  /** The server fixes a connection's username at its first join, so a new name needs a new one. */
  rename(username) {
    this.store.username = username;
    this.client.restart(username);
  }

  join(name) {
    let room = this.store.room(name);
    if (room) return room;
    room = this.store.addRoom(name);
    this.client.join(name).catch((error) => {
      if (this.store.room(name) !== room || WITHDRAWN.has(error.code)) return;
      this.store.removeRoom(name);
      this.callbacks.onError(`Could not join #${name}: ${error.message}`);
      this.store.changed();
    });
    if (this.client.connected) this.requestHistory(room, null);
    this.store.changed();
    return room;
  }

  leave(name) {
    if (!this.store.room(name)) return;
    this.client.leave(name);
    this.store.removeRoom(name);
    this.store.changed();
  }

  /**
   * Shows the message at once as pending; client.js (re)sends it until acknowledged. Its
   * content is `text` exactly as typed: the server keeps a code block's indentation, so the
   * page does too.
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
    };
    room.pending.set(entry.ref, entry);
    this.sendPending(room, entry);
    this.store.changed();
    return true;
  }

  retry(name, ref) {
    const room = this.store.room(name);
    const entry = room?.pending.get(ref);
    if (!entry) return;
    entry.error = null;
    this.sendPending(room, entry);
    this.store.changed();
  }

  sendPending(room, entry) {
    this.client.send(room.name, entry.content, { ref: entry.ref }).then(
      (ack) => {
        if (this.store.room(room.name) !== room) return;
        this.onSent(room, entry, ack);
        this.store.changed();
      },
      (error) => {
        if (this.store.room(room.name) !== room || WITHDRAWN.has(error.code)) return;
        entry.error = error.message;
        this.store.changed();
      },
    );
  }

  onSent(room, entry, ack) {
    room.pending.delete(entry.ref);
    this.learnName(room.messages.get(ack.id));
    // A retry of a message stored before a disconnect gets no broadcast of its own:
    // show it from the outbox until the replayed original (same id) replaces it.
    if (Number.isInteger(ack.id) && !room.messages.has(ack.id)) {
      room.addMessage({
        id: ack.id,
        room: room.name,
        from: this.store.username,
        content: entry.content,
        timestamp: new Date(entry.createdAt).toISOString(),
        provisional: true,
      });
    }
  }

  typing(name) {
    this.client.typing(name);
  }

  loadOlder(name) {
    const room = this.store.room(name);
    if (!room || !room.historyLoaded || !room.hasMore || room.loadingHistory) return;
    if (!this.client.connected) return;
    this.requestHistory(room, room.minId);
    this.store.changed();
  }

  requestHistory(room, before) {
    room.loadingHistory = true;
    const options = { limit: HISTORY_PAGE };
    if (before !== null) options.before = before;
    this.client.history(room.name, options).then(
      (page) => {
        if (this.store.room(room.name) !== room) return;
        this.onHistory(room, page);
        this.store.changed();
      },
      (error) => {
        if (this.store.room(room.name) !== room) return;
        room.loadingHistory = false;
        if (!RETRYABLE.has(error.code)) room.hasMore = false;
        this.store.changed();
      },
    );
  }

  onState({ state, retryAt, refusal }) {
    const unexplained = refusal && passedChecks(refusal) ? refusal.repeats : 0;
    const problem =
      refusal &&
      refusalProblem(refusal, { origin: location.origin, hasToken: this.hasToken, unexplained });
    this.store.connection = { state, retryAt, problem };
    if (state !== "connected") {
      for (const room of this.store.rooms.values()) room.forgetPresence();
      return;
    }
    // client.js has sent the joins: the first page of history follows them.
    for (const room of this.store.rooms.values()) {
      if (!room.historyLoaded && !room.loadingHistory) this.requestHistory(room, null);
    }
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

  onHistory(room, page) {
    if (Array.isArray(page.messages)) {
      for (const item of page.messages) {
        const message = asMessage(item);
        if (message && message.room === room.name) room.addMessage(message);
      }
    }
    room.hasMore = page.has_more === true;
    room.historyLoaded = true;
    room.loadingHistory = false;
  }

  /** The server's store went back (restored from a backup, or a memory store restarted). */
  onReset({ room: name }) {
    const room = this.store.room(name);
    if (!room) return;
    room.forgetMessages();
    this.requestHistory(room, null);
    this.callbacks.onError(`The server's history of #${room.name} changed; it was reloaded.`);
  }

  onJoined({ room: name, truncated }) {
    if (truncated && this.store.room(name)) {
      this.callbacks.onError(`Some messages in #${name} from while you were away are no longer kept.`);
    }
  }

  /** Refusals no promise reports: a rejoin refused (the client left the room), or an event without a ref. */
  onClientError(error) {
    if (error.request === "join" && error.room) {
      if (!this.store.room(error.room)) return;
      this.store.removeRoom(error.room);
      this.callbacks.onError(`Could not join #${error.room}: ${error.message}`);
    } else if (error.code !== "rate_limited") {
      // A dropped `typing` is not worth a word to the user.
      this.callbacks.onError(error.message);
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
      this.client.username = message.from;
    }
  }

  isWatching(room) {
    return this.store.activeRoom === room.name && document.visibilityState === "visible";
  }
}
