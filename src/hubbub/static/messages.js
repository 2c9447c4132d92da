// The message log of the active room: day headings, messages grouped by
// sender, own messages pending until acknowledged, and the scroll position
// kept where the reader left it while older pages arrive above.

import { avatar, h, KeyedList } from "./dom.js";
import { dayKey, dayLabel, fullLabel, timeLabel } from "./format.js";
import { appendLinkified } from "./linkify.js";

const GROUP_WITHIN_MS = 5 * 60 * 1000;
/** C0 controls but tab, LF and CR; DEL; C1 controls. The server refuses them in new messages. */
const CONTROL_CHARACTERS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/gu;
const BOTTOM_SLACK_PX = 48;
const LOAD_OLDER_WITHIN_PX = 200;

/** The log's items in display order: confirmed messages by id, then the outbox. */
export function logItems(room, username, now = new Date()) {
  const items = [];
  let lastDay = null;
  let previous = null;
  const add = (key, message, state, pending = null) => {
    let date = new Date(message.timestamp);
    if (Number.isNaN(date.getTime())) date = previous?.date ?? now;
    const day = dayKey(date);
    // The outbox uses the local clock, which may lag the server's: days never go back.
    if (lastDay === null || day > lastDay) {
      lastDay = day;
      previous = null;
      items.push({ key: `d:${day}`, kind: "day", label: dayLabel(date, now) });
    }
    const first =
      previous === null || previous.from !== message.from || date - previous.date > GROUP_WITHIN_MS;
    const own = message.from === username;
    items.push({ key, kind: "message", message, date, state, first, own, pending });
    previous = { from: message.from, date };
  };
  for (const id of room.order) add(`m:${id}`, room.messages.get(id), "sent");
  for (const entry of room.pending.values()) {
    if (entry.claimedBy !== null && room.messages.has(entry.claimedBy)) continue;
    entry.shown ??= {
      from: username,
      content: entry.content,
      timestamp: new Date(entry.createdAt).toISOString(),
    };
    add(`p:${entry.ref}`, entry.shown, entry.error ? "failed" : "pending", entry);
  }
  return items;
}

function createItem(item) {
  if (item.kind === "day") {
    return h("li", { className: "day" }, h("h2", { className: "day-label" }, item.label));
  }
  return h("li", { className: "msg" });
}

function updateItem(element, item, context) {
  if (item.kind === "day") {
    element.firstElementChild.textContent = item.label;
    return;
  }
  element.classList.toggle("msg--first", item.first);
  element.classList.toggle("msg--own", item.own);
  element.dataset.state = item.state;
  if (item.message.id !== undefined) element.dataset.id = String(item.message.id);
  if (element.shownMessage !== item.message) {
    element.shownMessage = item.message;
    element.replaceChildren(...messageParts(item));
  }
  updateStatus(element.querySelector(".msg-status"), item, context);
}

/** "Sending…", or why it failed with a Retry button; rebuilt only on change to keep focus. */
function updateStatus(status, item, context) {
  let text = "";
  if (item.state === "failed") text = `Not sent: ${item.pending.error}`;
  else if (item.state === "pending") text = context.online ? "Sending…" : "Waiting for connection…";
  if (status.dataset.text === text) return;
  status.dataset.text = text;
  status.replaceChildren(...(text ? [text] : []));
  if (item.state === "failed") {
    const ref = item.pending.ref;
    const retry = { type: "button", className: "link-button", dataset: { retry: ref } };
    status.append(" ", h("button", retry, "Retry"));
  }
}

/**
 * Control characters shown as what they are: ␇ for BEL, ␛ for the escape of an ANSI
 * sequence (C1 and DEL as U+FFFD). Browsers would draw them as empty boxes.
 */
export function visibleControls(text) {
  return text.replace(CONTROL_CHARACTERS, (char) => {
    const code = char.codePointAt(0);
    if (code < 0x20) return String.fromCodePoint(0x2400 + code);
    return code === 0x7f ? "\u2421" : "\ufffd";
  });
}

function messageParts(item) {
  const { message, date } = item;
  const time = h(
    "time",
    { className: "msg-time", dateTime: date.toISOString(), title: fullLabel(date) },
    timeLabel(date),
  );
  // dir="auto": each message is a bidi isolate whose direction is its own first letter's,
  // so that an unclosed U+202E or a right-to-left text stays inside it.
  const text = h("p", { className: "msg-text", dir: "auto" });
  appendLinkified(text, visibleControls(message.content));
  return [
    avatar(message.from),
    h(
      "div",
      { className: "msg-body" },
      h(
        "p",
        { className: "msg-meta" },
        h("span", { className: "msg-from", dir: "auto", title: message.from }, message.from),
        " ",
        time,
      ),
      text,
      h("p", { className: "msg-status" }),
    ),
  ];
}

export class MessageLog {
  /**
   * @param {{log: HTMLElement, list: HTMLElement, older: HTMLElement,
   *          olderButton: HTMLButtonElement, jump: HTMLButtonElement, empty: HTMLElement,
   *          onLoadOlder: () => void, onRetry: (ref: string) => void}} parts
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.context = { online: true };
    this.items = new KeyedList(this.list, createItem, (element, item) =>
      updateItem(element, item, this.context),
    );
    this.roomName = null;
    this.atBottom = true;
    this.lastKey = null;
    this.log.addEventListener("scroll", () => this.onScroll());
    this.jump.addEventListener("click", () => this.scrollToBottom());
    this.olderButton.addEventListener("click", () => this.onLoadOlder());
    this.list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-retry]");
      if (button) this.onRetry(button.dataset.retry);
    });
  }

  render(room, username, online) {
    if (room?.name !== this.roomName) {
      this.items.clear();
      this.roomName = room?.name ?? null;
      this.atBottom = true;
      this.lastKey = null;
      this.jump.hidden = true;
    }
    if (!room) return;
    this.context.online = online;
    const items = logItems(room, username);
    const anchor = this.atBottom ? null : this.firstVisible();
    this.items.render(items, (item) => item.key);

    this.older.hidden = !room.historyLoaded;
    this.olderButton.hidden = !room.hasMore;
    this.olderButton.disabled = room.loadingHistory;
    this.olderButton.textContent = room.loadingHistory ? "Loading…" : "Load older messages";
    this.older.querySelector(".log-start").hidden = room.hasMore || items.length === 0;
    this.empty.hidden = !room.historyLoaded || items.length > 0;

    const last = items.at(-1) ?? null;
    if (this.atBottom) {
      this.log.scrollTop = this.log.scrollHeight;
    } else {
      if (anchor) this.log.scrollTop += anchor.element.getBoundingClientRect().top - anchor.top;
      if (last && last.key !== this.lastKey && !last.own) this.jump.hidden = false;
    }
    this.lastKey = last?.key ?? null;
    if (this.log.scrollTop < LOAD_OLDER_WITHIN_PX) this.onLoadOlder();
  }

  scrollToBottom() {
    this.atBottom = true;
    this.jump.hidden = true;
    this.log.scrollTop = this.log.scrollHeight;
  }

  onScroll() {
    const { scrollTop, scrollHeight, clientHeight } = this.log;
    this.atBottom = scrollHeight - scrollTop - clientHeight < BOTTOM_SLACK_PX;
    if (this.atBottom) this.jump.hidden = true;
    if (scrollTop < LOAD_OLDER_WITHIN_PX) this.onLoadOlder();
  }

  /** The message the reader's eye is on; day headings move when older pages arrive. */
  firstVisible() {
    const top = this.log.getBoundingClientRect().top;
    for (const element of this.list.querySelectorAll(".msg")) {
      const rect = element.getBoundingClientRect();
      if (rect.bottom > top) return { element, top: rect.top };
    }
    return null;
  }
}
