// What the page remembers between visits: the username, the joined rooms and
// the one last open. Storage may be unavailable (private modes): then nothing is kept.

const KEY = "hubbub.prefs.v1";

export function loadPrefs() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? "{}");
    return {
      username: typeof saved.username === "string" ? saved.username : null,
      rooms: Array.isArray(saved.rooms)
        ? saved.rooms.filter((name) => typeof name === "string")
        : [],
      active: typeof saved.active === "string" ? saved.active : null,
    };
  } catch {
    return { username: null, rooms: [], active: null };
  }
}

export function savePrefs(prefs) {
  try {
    localStorage.setItem(KEY, JSON.stringify(prefs));
  } catch {
    // Nothing to do: the page works without memory.
  }
}
