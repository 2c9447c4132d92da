// Who is in the active room, and who of them is typing.

import { avatar, h, KeyedList } from "./dom.js";

export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  if (names.length === 3) return `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
  return "Several people are typing…";
}

function createMember(name) {
  const label = h("span", { className: "member-name" }, name);
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
    this.members = new KeyedList(this.list, createMember, (element, name) =>
      updateMember(element, name, this.username),
    );
  }

  render(room, username, now = Date.now()) {
    this.username = username;
    const users = room ? room.online : [];
    const count = room ? Math.max(room.onlineCount, users.length) : 0;
    this.members.render(users, (name) => name);
    this.title.textContent = `Online — ${count}`;
    this.count.textContent = String(count);
    this.more.hidden = count <= users.length;
    this.more.textContent = `and ${count - users.length} more`;
    const text = room ? typingText(room.activeTypers(now)) : "";
    if (this.typing.textContent !== text) this.typing.textContent = text;
  }
}
