// The server's rule for a message's `content` (PROTOCOL.md, "Validation"): 1..4000
// characters (code points, so an emoji is one) after trimming. Trimming only decides
// whether it is valid: the page sends the text exactly as typed, so a pasted code
// block keeps its indentation, trailing spaces and newlines.
//
// Trimmed as the server (Python's str.strip) trims, which is not String.trim: U+FEFF
// is not whitespace to it; U+001C..U+001F and U+0085 are.

export const MAX_CONTENT = 4000;

const EDGE_WHITESPACE =
  /^[\t-\r\u001C-\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+|[\t-\r\u001C-\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$/gu;

/** The text without the whitespace at its ends, for counting only. */
export function serverTrim(text) {
  return text.replace(EDGE_WHITESPACE, "");
}

/** Code points after trimming, as the server counts them. */
export function contentLength(text) {
  let length = 0;
  for (const _ of serverTrim(text)) length += 1;
  return length;
}

export function isBlank(text) {
  return serverTrim(text) === "";
}
