// Small DOM helpers. Text is always added as text nodes: user input never
// reaches innerHTML.

/** h("a", {className: "x", href}, "text", child) */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("aria-") || name === "role") element.setAttribute(name, value);
    else element[name] = value;
  }
  element.append(...children.filter((child) => child !== null && child !== undefined));
  return element;
}

/**
 * Keeps a parent's children in step with a list of keyed items, reusing the
 * element of each key so that focus, selection and scroll anchors survive
 * re-renders.
 */
export class KeyedList {
  /**
   * @param {Element} parent
   * @param {(item: any) => Element} create
   * @param {(element: Element, item: any) => void} update
   */
  constructor(parent, create, update) {
    this.parent = parent;
    this.create = create;
    this.update = update;
    this.elements = new Map();
  }

  render(items, keyOf) {
    const keys = new Set(items.map(keyOf));
    for (const [key, element] of this.elements) {
      if (!keys.has(key)) {
        element.remove();
        this.elements.delete(key);
      }
    }
    let cursor = this.parent.firstElementChild;
    for (const item of items) {
      const key = keyOf(item);
      let element = this.elements.get(key);
      if (!element) {
        element = this.create(item);
        this.elements.set(key, element);
      }
      this.update(element, item);
      if (element === cursor) cursor = cursor.nextElementSibling;
      else this.parent.insertBefore(element, cursor);
    }
  }

  clear() {
    for (const element of this.elements.values()) element.remove();
    this.elements.clear();
  }
}

/** A stable hue for a name, so that each person keeps their colour. */
export function hueOf(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

export function avatar(name) {
  const initial = Array.from(name.trim())[0] ?? "?";
  const element = h("span", { className: "avatar", "aria-hidden": "true" }, initial.toUpperCase());
  element.style.setProperty("--hue", String(hueOf(name)));
  return element;
}
