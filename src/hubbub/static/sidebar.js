// The sidebar lists: rooms this page has joined (with unread counts) and the
// server's active rooms (from GET /rooms) that it has not.

import { h, KeyedList } from "./dom.js";

function createJoined({ room }) {
  const select = h(
    "button",
    { type: "button", className: "room-link", dataset: { room: room.name } },
    h("span", { className: "room-name" }, `# ${room.name}`),
    h("span", { className: "badge" }),
  );
  const leave = h(
    "button",
    {
      type: "button",
      className: "room-leave",
      title: `Leave #${room.name}`,
      "aria-label": `Leave #${room.name}`,
      dataset: { leave: room.name },
    },
    "×",
  );
  return h("li", { className: "room-item" }, select, leave);
}

function updateJoined(element, { room, active }) {
  const select = element.querySelector(".room-link");
  if (active) select.setAttribute("aria-current", "true");
  else select.removeAttribute("aria-current");
  const badge = element.querySelector(".badge");
  const label = room.unread > 99 ? "99+" : String(room.unread);
  badge.hidden = room.unread === 0;
  if (badge.dataset.count !== label) {
    badge.dataset.count = label;
    badge.replaceChildren(label, h("span", { className: "sr-only" }, " unread"));
  }
}

function createActive(entry) {
  const join = h(
    "button",
    { type: "button", className: "room-link", dataset: { join: entry.name } },
    h("span", { className: "room-name" }, `# ${entry.name}`),
    h("span", { className: "room-count" }),
  );
  return h("li", { className: "room-item" }, join);
}

function updateActive(element, entry) {
  const count = element.querySelector(".room-count");
  count.textContent = String(entry.count);
  count.title = `${entry.count} online`;
}

export class Sidebar {
  /**
   * @param {{joined: HTMLElement, active: HTMLElement, activeEmpty: HTMLElement,
   *          onSelect: (name: string) => void, onLeave: (name: string) => void,
   *          onJoin: (name: string) => void}} parts
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.joinedList = new KeyedList(this.joined, createJoined, updateJoined);
    this.activeList = new KeyedList(this.active, createActive, updateActive);
    this.joined.addEventListener("click", (event) => {
      const leave = event.target.closest("[data-leave]");
      const select = event.target.closest("[data-room]");
      if (leave) this.onLeave(leave.dataset.leave);
      else if (select) this.onSelect(select.dataset.room);
    });
    this.active.addEventListener("click", (event) => {
      const join = event.target.closest("[data-join]");
      if (join) this.onJoin(join.dataset.join);
    });
  }

  render(store) {
    const joined = [...store.rooms.values()].map((room) => ({
      room,
      active: room.name === store.activeRoom,
    }));
    this.joinedList.render(joined, (item) => item.room.name);
    const others = store.directory.filter((entry) => !store.rooms.has(entry.name));
    this.activeList.render(others, (entry) => entry.name);
    this.activeEmpty.hidden = others.length > 0;
  }
}
