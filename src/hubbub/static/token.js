// The name a sign-in token gives its holder. The server takes the username
// from the token's `sub` (or `name`) claim and ignores the one the page sends,
// so the page shows that name. The signature is the server's business: the
// page only reads its own token, it does not trust it for anything.

const MAX_USERNAME = 32;
const CONTROL_CHARACTERS = /\p{Cc}/u;

function claims(token) {
  const payload = token?.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

/** The username the server will use for this token, or null when it names none. */
export function tokenName(token) {
  const found = claims(token);
  if (!found) return null;
  const name = "sub" in found ? found.sub : found.name;
  if (typeof name !== "string") return null;
  const trimmed = name.trim();
  const length = Array.from(trimmed).length;
  if (length < 1 || length > MAX_USERNAME || CONTROL_CHARACTERS.test(trimmed)) return null;
  return trimmed;
}
