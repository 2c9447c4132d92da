// Why the server refused the page's WebSocket, in words the reader can act on.
//
// A browser never shows a page the HTTP status of a refused upgrade: the
// socket just closes. So after a connection that never opened, client.js asks
// the same address over plain HTTP and reports the answer as its state's
// `refusal`: the server runs the same checks on that request and answers 401,
// 429 or 503 with the reason in a JSON body, or 426 when they all pass (it is
// not an upgrade). A same-origin
// GET carries no `Origin` header, so the origin check (403) can only be
// inferred: the checks pass, and yet the socket keeps failing.

/** Upgrades that failed in a row while plain requests passed every check. */
const UNEXPLAINED_BEFORE_BLAMING = 2;

/** Did the probe pass every check the server makes before an upgrade? */
export function passedChecks(answer) {
  return answer !== null && (answer.status === 426 || answer.status === 400);
}

/**
 * What to tell the reader about a probe's answer: {title, detail, advice, retry}
 * (retry false: trying again cannot help until something changes), or null.
 */
export function refusalProblem(answer, { origin, hasToken, unexplained = 0 }) {
  if (answer === null) return null;
  const detail = answer.reason ? `The server said: “${answer.reason}”.` : "";
  switch (answer.status) {
    case 401:
      return hasToken
        ? {
            title: "The server did not accept your sign-in link.",
            detail,
            advice: "Open the chat again from the site that sent you here, to get a fresh link.",
            retry: false,
          }
        : {
            title: "This server needs a sign-in link.",
            detail,
            advice: "Open the chat from the link your organisation's sign-in gives you (it ends in ?token=…).",
            retry: false,
          };
    case 403:
      return {
        title: `The server refuses connections from this page's address (${origin}).`,
        detail,
        advice: "Open the chat at the server's own address, or ask its admin to allow this one (--allowed-origins).",
        retry: false,
      };
    case 429:
      return {
        title: "Too many connections from your network.",
        detail,
        advice: "Close other Hubbub tabs; the page keeps trying.",
        retry: true,
      };
    case 503:
      return answer.reason
        ? { title: "The server is full.", detail, advice: "The page keeps trying.", retry: true }
        : null;
    default:
      if (!passedChecks(answer) || unexplained < UNEXPLAINED_BEFORE_BLAMING) return null;
      return {
        title: "The server answers, but refuses this page's live connection.",
        detail: "",
        advice:
          `Its admin should check that ${origin} is an allowed origin (--allowed-origins) ` +
          "and that any proxy in between passes WebSocket upgrades and the Host header.",
        retry: true,
      };
  }
}
