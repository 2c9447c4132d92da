// The page's entry point: reads what the URL and storage say, builds the
// store, the chat client and the views, and wires the page's controls to them.

import { Announcer } from "./announcer.js";
import { Chat, guestName } from "./chat.js";
import { Composer } from "./composer.js";
import { isBlank } from "./content.js";
import { avatar } from "./dom.js";
import { Drawers } from "./drawers.js";
import { MessageLog } from "./messages.js";
import { loadPrefs, savePrefs } from "./prefs.js";
import { Presence } from "./presence.js";
import { Sidebar } from "./sidebar.js";
import { ConnectionStatus } from "./status.js";
import { Store } from "./store.js";
import { Toasts } from "./toasts.js";
import { tokenName } from "./token.js";

const ROOM_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const CONTROL_CHARACTERS = /\p{Cc}/u;
const MAX_USERNAME = 32;
const DIRECTORY_EVERY_MS = 15_000;

const $ = (id) => document.getElementById(id);

/** A problem with a typed username, or null when the server will take it. */
function usernameProblem(name) {
  // Counted as the server counts: characters, not UTF-16 units (an emoji is one).
  if (Array.from(name).length > MAX_USERNAME) return `Names are at most ${MAX_USERNAME} characters.`;
  if (CONTROL_CHARACTERS.test(name)) return "Names cannot contain control characters.";
  return null;
}

function roomProblem(name) {
  if (!name) return "Type a room name.";
  if (!ROOM_NAME.test(name)) return "Room names use letters, digits, “.”, “-” and “_” (up to 64).";
  return null;
}

/** "#general " typed by a person means "general". */
function roomInput(value) {
  return value.trim().replace(/^#/, "");
}

const params = new URLSearchParams(location.search);
const token = params.get("token");
const prefs = loadPrefs();
const store = new Store();
const announcer = new Announcer($("announcer"));
const toasts = new Toasts($("toasts"));
const chat = new Chat(store, token, {
  onError: (text) => toasts.show(text),
  onNewMessage: (room, message) => announcer.message(room, message, room.name === store.activeRoom),
});

const sidebar = new Sidebar({
  joined: $("joined-rooms"),
  active: $("active-rooms"),
  activeEmpty: $("active-empty"),
  onSelect: (name) => selectRoom(name),
  onLeave: (name) => leaveRoom(name),
  onJoin: (name) => joinRoom(name),
});
const status = new ConnectionStatus({
  root: $("status"),
  text: $("status-text"),
  retry: $("reconnect"),
  problem: $("problem"),
  problemTitle: $("problem-title"),
  problemDetail: $("problem-detail"),
  problemAdvice: $("problem-advice"),
  onRetry: () => chat.reconnect(),
  onChange: (state, previous) => {
    if (state === "connected" && previous !== "connecting") announcer.say("Reconnected.");
    else if (state === "offline") announcer.say("You are offline.");
    else if (state === "refused") return; // the problem's alert says it
    else if (previous === "connected") announcer.say("Connection lost. Reconnecting…");
    if (state === "connected") refreshDirectory();
  },
});
const presence = new Presence({
  title: $("members-title"),
  list: $("member-list"),
  more: $("members-more"),
  count: $("members-count"),
  typing: $("typing"),
});
const messageLog = new MessageLog({
  log: $("log"),
  list: $("messages"),
  older: $("older"),
  olderButton: $("load-older"),
  jump: $("jump"),
  empty: $("log-empty"),
  onLoadOlder: () => store.activeRoom && chat.loadOlder(store.activeRoom),
  onRetry: (ref) => chat.retry(store.activeRoom, ref),
});
const composer = new Composer({
  form: $("composer"),
  input: $("composer-input"),
  label: $("composer-label"),
  counter: $("composer-count"),
  onTooLong: (text) => toasts.show(text),
  onSend: (text) => {
    if (!store.activeRoom || isBlank(text)) return false;
    messageLog.scrollToBottom();
    return chat.post(store.activeRoom, text);
  },
  onTyping: () => store.activeRoom && chat.typing(store.activeRoom),
});

const drawers = new Drawers($("app"), $("room"), {
  rooms: { panel: $("sidebar"), toggle: $("open-sidebar") },
  members: { panel: $("members"), toggle: $("toggle-members") },
});
for (const id of ["close-sidebar", "close-members", "scrim"]) {
  $(id).addEventListener("click", () => drawers.close());
}

// Rendering --------------------------------------------------------------

let renderScheduled = false;

/** One render per burst of events; a timer backs up rAF, which hidden tabs never run. */
function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  const run = () => {
    if (renderScheduled) render();
  };
  requestAnimationFrame(run);
  setTimeout(run, 100);
}

let savedPrefs = "";
let shownName = null;

function render() {
  renderScheduled = false;
  const room = store.current;
  if (room && document.visibilityState === "visible") room.unread = 0;
  sidebar.render(store);
  status.render(store.connection);
  presence.render(room, store.username);
  messageLog.render(room, store.username, store.connection.state === "connected");
  composer.render(room?.name ?? null);
  $("room-title").textContent = room ? `# ${room.name}` : "";
  $("leave-room").hidden = !room;
  $("leave-room").ariaLabel = room ? `Leave #${room.name}` : null;
  $("rename").hidden = store.nameFixed;
  if (shownName !== store.username) {
    shownName = store.username;
    $("me-name").textContent = store.username ?? "";
    $("me-avatar").replaceChildren(store.username ? avatar(store.username) : "");
  }
  const unread = store.totalUnread();
  $("unread-dot").hidden = unread === 0;
  const where = room ? `#${room.name} · ` : "";
  document.title = `${unread ? `(${unread}) ` : ""}${where}Hubbub`;
  remember();
}

function remember() {
  const next = {
    username: store.username,
    rooms: [...store.rooms.keys()],
    active: store.activeRoom,
  };
  const text = JSON.stringify(next);
  if (text !== savedPrefs) {
    savedPrefs = text;
    savePrefs(next);
  }
}

store.subscribe(scheduleRender);
document.addEventListener("visibilitychange", scheduleRender);

// Rooms ------------------------------------------------------------------

function selectRoom(name) {
  if (!store.room(name)) return;
  store.activeRoom = name;
  drawers.close({ restoreFocus: false });
  render();
  composer.focus();
}

function joinRoom(name) {
  chat.join(name);
  selectRoom(name);
  setTimeout(refreshDirectory, 500);
}

function leaveRoom(name) {
  chat.leave(name);
  if (store.rooms.size === 0) {
    drawers.close({ restoreFocus: false });
    showWelcome();
    return;
  }
  render();
  composer.focus();
  setTimeout(refreshDirectory, 500);
}

function stepRoom(step) {
  const names = [...store.rooms.keys()];
  if (names.length < 2) return;
  const index = names.indexOf(store.activeRoom);
  selectRoom(names[(index + step + names.length) % names.length]);
}

async function refreshDirectory() {
  try {
    const response = await fetch("/rooms", { cache: "no-store" });
    if (!response.ok) return;
    const body = await response.json();
    if (!Array.isArray(body.rooms)) return;
    store.directory = body.rooms
      .filter((entry) => typeof entry?.name === "string" && Number.isInteger(entry.count))
      .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
    store.changed();
  } catch {
    // The list is a convenience; it stays as it was until the next refresh.
  }
}

setInterval(() => {
  if (document.visibilityState === "visible" && !$("app").hidden) refreshDirectory();
}, DIRECTORY_EVERY_MS);

// Welcome and names ------------------------------------------------------

let started = false;

function showWelcome() {
  $("app").hidden = true;
  $("welcome").hidden = false;
  // The skip link jumps to the message box, which the welcome screen does not have.
  $("skip-link").hidden = true;
  $("welcome-name").value = store.username ?? "";
  $("welcome-name").readOnly = store.nameFixed;
  if (store.nameFixed) $("welcome-name-hint").textContent = "Your sign-in link gives you this name.";
  if (!$("welcome-room").value) $("welcome-room").value = "general";
  (store.username ? $("welcome-room") : $("welcome-name")).focus();
}

function enterApp() {
  $("welcome").hidden = true;
  $("app").hidden = false;
  $("skip-link").hidden = false;
  if (!started) {
    started = true;
    chat.start();
    refreshDirectory();
  }
  render();
  composer.focus();
}

$("welcome-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("welcome-name").value.trim();
  const room = roomInput($("welcome-room").value);
  const nameProblem = usernameProblem(name);
  const problem = nameProblem ?? roomProblem(room);
  $("welcome-error").textContent = problem ?? "";
  $("welcome-name").ariaInvalid = nameProblem ? "true" : null;
  $("welcome-room").ariaInvalid = problem && !nameProblem ? "true" : null;
  if (problem) return;
  const username = name || store.username || guestName();
  if (started && username !== store.username) chat.rename(username);
  store.username = username;
  chat.join(room);
  store.activeRoom = room;
  enterApp();
});

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = roomInput($("join-room").value);
  const problem = roomProblem(name);
  $("join-error").textContent = problem ?? "";
  $("join-room").ariaInvalid = problem ? "true" : null;
  if (problem) return;
  $("join-room").value = "";
  joinRoom(name);
});

function setRenaming(renaming) {
  $("rename-form").hidden = !renaming;
  $("me-view").hidden = renaming;
  if (renaming) {
    $("rename-input").value = store.username ?? "";
    $("rename-input").select();
  } else {
    $("rename").focus();
  }
}

$("rename").addEventListener("click", () => setRenaming(true));
$("rename-cancel").addEventListener("click", () => setRenaming(false));
$("rename-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("rename-input").value.trim();
  const problem = name ? usernameProblem(name) : "Type a name.";
  if (problem) {
    toasts.show(problem);
    return;
  }
  if (name !== store.username) chat.rename(name);
  setRenaming(false);
  render();
});
$("rename-form").addEventListener("keydown", (event) => {
  if (event.key === "Escape") setRenaming(false);
});

$("leave-room").addEventListener("click", () => store.activeRoom && leaveRoom(store.activeRoom));

// Keyboard ---------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && drawers.openName) {
    drawers.close();
  } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    stepRoom(event.key === "ArrowUp" ? -1 : 1);
  }
});

// Start ------------------------------------------------------------------

function boot() {
  const urlName = params.get("username")?.trim() ?? "";
  const urlRoom = roomInput(params.get("room") ?? "");
  const savedName = prefs.username && !usernameProblem(prefs.username) ? prefs.username : null;
  // With a sign-in token the server uses the token's name and ignores any other.
  const signedIn = tokenName(token);
  store.nameFixed = signedIn !== null;
  store.username = signedIn ?? (urlName && !usernameProblem(urlName) ? urlName : savedName);
  const rooms = prefs.rooms.filter((name) => ROOM_NAME.test(name));
  const linked = ROOM_NAME.test(urlRoom) ? urlRoom : null;
  if (linked && !rooms.includes(linked)) rooms.push(linked);
  for (const name of rooms) chat.join(name);
  store.activeRoom = linked ?? (rooms.includes(prefs.active) ? prefs.active : (rooms[0] ?? null));

  // The link did its job; a reload should come back to the rooms as they are by then.
  if (params.has("username") || params.has("room")) {
    params.delete("username");
    params.delete("room");
    const query = params.toString() ? `?${params}` : "";
    history.replaceState(null, "", `${location.pathname}${query}${location.hash}`);
  }
  if (linked && !store.username) $("welcome-room").value = linked;
  if (store.username && store.rooms.size > 0) enterApp();
  else showWelcome();
}

boot();
