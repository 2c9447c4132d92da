// On narrow screens the rooms and the people online slide over the room as
// drawers: one open at a time, the room behind it inert, Escape closes it and
// gives the focus back to the button that opened it.

export class Drawers {
  /**
   * @param {HTMLElement} app the element whose `data-drawer` names the open drawer (CSS shows it)
   * @param {HTMLElement} behind what the open drawer covers
   * @param {Record<string, {panel: HTMLElement, toggle: HTMLElement}>} drawers
   */
  constructor(app, behind, drawers) {
    this.app = app;
    this.behind = behind;
    this.drawers = drawers;
    for (const [name, { toggle }] of Object.entries(drawers)) {
      toggle.addEventListener("click", () => {
        if (this.openName === name) this.close();
        else this.open(name);
      });
    }
    // A drawer left open while the window widens would keep the room inert.
    for (const query of ["(min-width: 720px)", "(min-width: 1100px)"]) {
      matchMedia(query).addEventListener("change", () => this.close({ restoreFocus: false }));
    }
  }

  get openName() {
    return this.app.dataset.drawer ?? null;
  }

  open(name) {
    const { panel, toggle } = this.drawers[name];
    this.close({ restoreFocus: false });
    this.app.dataset.drawer = name;
    toggle.setAttribute("aria-expanded", "true");
    this.behind.inert = true;
    panel.querySelector("button, input, [tabindex]")?.focus();
  }

  close({ restoreFocus = true } = {}) {
    const name = this.openName;
    if (!name) return;
    delete this.app.dataset.drawer;
    this.behind.inert = false;
    this.drawers[name].toggle.setAttribute("aria-expanded", "false");
    if (restoreFocus) this.drawers[name].toggle.focus();
  }
}
