// Who is in the active room, and who of them is typing. Names are shown in
// bidi isolates: a right-to-left name does not reorder the words around it.

import { avatar, h, KeyedList } from "./dom.js";

/** "a and b are typing…" as parts: {name} for each name, strings between them. */
export function typingParts(names) {
  const n = (name) => ({ name });
  if (names.length === 0) return [];
  if (names.length === 1) return [n(names[0]), " is typing…"];
  if (names.length === 2) return [n(names[0]), " and ", n(names[1]), " are typing…"];
  if (names.length === 3) {
    return [n(names[0]), ", ", n(names[1]), " and ", n(names[2]), " are typing…"];
  }
  return ["Several people are typing…"];
}

export function typingText(names) {
  return typingParts(names)
    .map((part) => (typeof part === "string" ? part : part.name))
    .join("");
}

function createMember(name) {
  const label = h("span", { className: "member-name", dir: "auto" }, name);
  return h("li", { className: "member" }, avatar(name), label);
}

function updateMember(element, name, username) {
  element.classList.toggle("member--me", name === username);
}

export class Presence {
  /**
   * @param {{title: HTMLElement, list: HTMLElement, more: HTMLElement, count: HTMLElement,
   *          typing: HTMLElement}} parts
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.username = null;
    this.typingShown = "";
    this.members = new KeyedList(this.list, createMember, (element, name) =>
      updateMember(element, name, this.username),
    );
  }

  render(room, username, now = Date.now()) {
    this.username = username;
    const known = room?.presenceKnown ?? false;
    const users = room && known ? room.online : [];
    const count = room && known ? Math.max(room.onlineCount, users.length) : 0;
    this.members.render(users, (name) => name);
    this.title.textContent = known ? `Online — ${count}` : "Online";
    const countText = known ? String(count) : "?";
    if (this.count.dataset.text !== countText) {
      this.count.dataset.text = countText;
      this.count.replaceChildren(
        ...(known
          ? [countText]
          : [h("span", { "aria-hidden": "true" }, "–"), h("span", { className: "sr-only" }, "unknown")]),
      );
    }
    this.more.hidden = known ? count <= users.length : !room;
    this.more.textContent = known
      ? `and ${count - users.length} more`
      : "Not connected: who is here shows again once the page reconnects.";
    const names = room ? room.activeTypers(now) : [];
    const text = typingText(names);
    if (this.typingShown === text) return;
    this.typingShown = text;
    this.typing.replaceChildren(
      ...typingParts(names).map((part) =>
        typeof part === "string" ? part : h("bdi", {}, part.name),
      ),
    );
  }
}
