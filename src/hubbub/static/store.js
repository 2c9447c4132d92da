// The page's state: joined rooms with their messages, outbox, presence and
// unread counts. It does no I/O; chat.js feeds it and the views read it.

export const TYPING_EXPIRES_MS = 5000;

export class Room {
  constructor(name) {
    this.name = name;
    /** Confirmed messages by id, and their ids in ascending order. */
    this.messages = new Map();
    this.order = [];
    /** Own messages not yet acknowledged, by ref, in sending order. */
    this.pending = new Map();
    this.online = [];
    this.onlineCount = 0;
    /** Who is online is only known while connected: false until the join's `online_users`. */
    this.presenceKnown = false;
    /** username -> time (ms) at which their "is typing" expires. */
    this.typing = new Map();
    this.unread = 0;
    /** The newest page of history has arrived: the message list is contiguous up to maxId. */
    this.historyLoaded = false;
    this.hasMore = false;
    this.loadingHistory = false;
  }

  get maxId() {
    return this.order.length ? this.order[this.order.length - 1] : null;
  }

  get minId() {
    return this.order.length ? this.order[0] : null;
  }

  /** Adds a confirmed message; returns false when its id was already known. */
  addMessage(message) {
    const known = this.messages.get(message.id);
    if (known && !known.provisional) return false;
    this.messages.set(message.id, message);
    if (!known) insertSorted(this.order, message.id);
    return !known;
  }

  /** The server's history went back to an older state: what the page knew of it is void. */
  forgetMessages() {
    this.messages.clear();
    this.order = [];
    this.historyLoaded = false;
    this.hasMore = false;
    this.loadingHistory = false;
    for (const entry of this.pending.values()) entry.claimedBy = null;
  }

  /** While disconnected the page cannot know who is here: show nobody rather than a stale list. */
  forgetPresence() {
    this.online = [];
    this.onlineCount = 0;
    this.presenceKnown = false;
    this.typing.clear();
  }

  /** The own message a just-broadcast `message` most likely confirms, before its ack arrives. */
  claimPending(message) {
    for (const entry of this.pending.values()) {
      if (entry.claimedBy === null && entry.content === message.content) {
        entry.claimedBy = message.id;
        return;
      }
    }
  }

  activeTypers(now) {
    const names = [];
    for (const [name, expiresAt] of this.typing) if (expiresAt > now) names.push(name);
    return names;
  }
}

function insertSorted(ids, id) {
  let low = 0;
  let high = ids.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ids[mid] < id) low = mid + 1;
    else high = mid;
  }
  ids.splice(low, 0, id);
}

export class Store {
  constructor() {
    this.username = null;
    /** The name is the sign-in token's: the server ignores any other, so it cannot be changed. */
    this.nameFixed = false;
    /** Joined rooms in sidebar order. */
    this.rooms = new Map();
    this.activeRoom = null;
    /** {state: connecting|connected|reconnecting|offline|refused, retryAt: ms|null,
     *   problem: {title, detail, advice, retry}|null} */
    this.connection = { state: "connecting", retryAt: null, problem: null };
    /** Rooms with people in them, from GET /rooms. */
    this.directory = [];
    this.listeners = new Set();
  }

  subscribe(listener) {
    this.listeners.add(listener);
  }

  changed() {
    for (const listener of this.listeners) listener();
  }

  room(name) {
    return this.rooms.get(name) ?? null;
  }

  get current() {
    return this.room(this.activeRoom);
  }

  addRoom(name) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name);
      this.rooms.set(name, room);
    }
    return room;
  }

  removeRoom(name) {
    const names = [...this.rooms.keys()];
    this.rooms.delete(name);
    if (this.activeRoom === name) {
      const index = names.indexOf(name);
      this.activeRoom = names[index + 1] ?? names[index - 1] ?? null;
    }
  }

  totalUnread() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.unread;
    return total;
  }
}
