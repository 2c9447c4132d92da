// Short-lived error notes (an alert region), each dismissable.

import { h } from "./dom.js";

const SHOW_MS = 8000;

export class Toasts {
  constructor(region) {
    this.region = region;
  }

  show(text) {
    const props = { type: "button", className: "toast-close", "aria-label": "Dismiss" };
    const close = h("button", props, "×");
    const toast = h("div", { className: "toast" }, h("span", {}, text), close);
    const remove = () => toast.remove();
    close.addEventListener("click", remove);
    setTimeout(remove, SHOW_MS);
    this.region.append(toast);
    while (this.region.childElementCount > 3) this.region.firstElementChild.remove();
  }
}
