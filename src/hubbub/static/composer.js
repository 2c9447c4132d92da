// The message box: Enter sends, Shift+Enter breaks the line, it grows with
// its text, and keystrokes that change the text count as typing.

const MAX_HEIGHT_PX = 200;

export class Composer {
  /**
   * @param {{form: HTMLFormElement, input: HTMLTextAreaElement, label: HTMLElement,
   *          onSend: (text: string) => boolean, onTyping: () => void}} parts
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
      if (this.input.value.trim()) this.onTyping();
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
    if (this.onSend(this.input.value)) {
      this.input.value = "";
      this.fit();
    }
  }

  focus() {
    this.input.focus();
  }

  fit() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, MAX_HEIGHT_PX)}px`;
  }
}
