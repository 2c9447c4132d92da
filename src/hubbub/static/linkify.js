// Plain text with its web addresses made clickable, built from text nodes and
// anchors only. Only http(s) addresses become links: never javascript: or data:.

const ADDRESS = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING_PUNCTUATION = /[.,;:!?'"*_~]+$/u;

/** Drops punctuation that ends the sentence rather than the address. */
function trimAddress(candidate) {
  let address = candidate.replace(TRAILING_PUNCTUATION, "");
  for (const [open, close] of [["(", ")"], ["[", "]"]]) {
    while (address.endsWith(close) && count(address, close) > count(address, open)) {
      address = address.slice(0, -1).replace(TRAILING_PUNCTUATION, "");
    }
  }
  return address;
}

function count(text, char) {
  return text.split(char).length - 1;
}

export function safeHref(address) {
  try {
    const url = new URL(address);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function appendLinkified(parent, text) {
  let done = 0;
  for (const match of text.matchAll(ADDRESS)) {
    const address = trimAddress(match[0]);
    const href = safeHref(address);
    if (!href) continue;
    const link = document.createElement("a");
    link.href = href;
    link.textContent = address;
    link.rel = "noopener noreferrer";
    link.target = "_blank";
    parent.append(text.slice(done, match.index), link);
    done = match.index + address.length;
  }
  parent.append(text.slice(done));
}
