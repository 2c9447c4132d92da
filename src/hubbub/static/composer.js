// The message box: Enter sends, Shift+Enter breaks the line, it grows with
// its text, and keystrokes that change the text count as typing. Near the
// server's limit a counter shows how much is left, counted as the server
// counts (see content.js). What is sent is the text as typed, untrimmed.

import { contentLength, isBlank, MAX_CONTENT } from "./content.js";

const MAX_HEIGHT_PX = 200;
/** The counter shows from this many characters on. */
const COUNT_FROM = MAX_CONTENT - 500;

/** The counter's text for `length` characters, or "" while it is far from the limit. */
export function counterText(length) {
  return length < COUNT_FROM ? "" : `${length} / ${MAX_CONTENT}`;
}

export function tooLongText(length) {
  const over = length - MAX_CONTENT;
  const characters = over === 1 ? "character" : "characters";
  return `Too long to send: ${over} ${characters} over the limit of ${MAX_CONTENT}.`;
}

export class Composer {
  /**
   * @param {{form: HTMLFormElement, input: HTMLTextAreaElement, label: HTMLElement,
   *          counter: HTMLElement, onSend: (text: string) => boolean,
   *          onTooLong: (text: string) => void, onTyping: () => void}} parts
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.roomName = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send();
    });
    this.input.addEventListener("keydown", (event) => {
      // While an input method composes (Thai, Japanese…), Enter picks a candidate.
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.send();
      }
    });
    this.input.addEventListener("input", () => {
      this.fit();
      this.count();
      if (!isBlank(this.input.value)) this.onTyping();
    });
  }

  render(roomName) {
    if (roomName === this.roomName) return;
    this.roomName = roomName;
    const label = roomName ? `Message #${roomName}` : "Message";
    this.label.textContent = label;
    this.input.placeholder = label;
    this.form.hidden = roomName === null;
  }

  send() {
    const length = contentLength(this.input.value);
    if (length > MAX_CONTENT) {
      this.onTooLong(tooLongText(length));
      return;
    }
    if (this.onSend(this.input.value)) {
      this.input.value = "";
      this.fit();
      this.count();
    }
  }

  count() {
    const length = contentLength(this.input.value);
    const text = counterText(length);
    this.counter.hidden = text === "";
    if (this.counter.textContent !== text) this.counter.textContent = text;
    this.counter.classList.toggle("composer-count--over", length > MAX_CONTENT);
    this.input.ariaInvalid = length > MAX_CONTENT ? "true" : null;
  }

  focus() {
    this.input.focus();
  }

  fit() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }
}
