/**
 * An example live dashboard built on Hubbub's browser client (`/client.js`).
 *
 * It joins a room as a watcher (no presence traffic for the room, however many
 * dashboards are open), shows the latest value of each symbol and a chart of
 * the recent ones, and after a dropped connection catches up from where it
 * was: the client rejoins with `since`, so quotes published meanwhile are
 * replayed once, in order. Every quote is a Hubbub message whose `data` is
 * `{symbol, price, change}` (see `examples/ticker.py`); anything else in the
 * room is ignored. Values are shown as text only, never as HTML.
 *
 * Query parameters: `room` (default `prices`), `server` (default: this page's server).
 */

import { HubbubClient } from "/client.js";

const WINDOW = 60;
const COLOURS = ["#4f46e5", "#d97706", "#0891b2", "#db2777", "#65a30d", "#7c3aed"];
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 240;
const PAD = 24;

const params = new URLSearchParams(location.search);
const room = params.get("room") || "prices";
const client = new HubbubClient(params.get("server") || undefined);

/** symbol -> [{id, price, change}], oldest first, at most WINDOW. */
const series = new Map();
/** The ids applied, so that a history page and live messages overlapping count once. */
const applied = new Set();

document.getElementById("room").textContent = `#${room}`;
document.getElementById("window").textContent = String(WINDOW);

/** A quote from a message, or null when the message is not one. */
export function quoteOf(message) {
  const data = message?.data;
  if (data === null || typeof data !== "object" || Array.isArray(data)) return null;
  const { symbol, price, change } = data;
  if (typeof symbol !== "string" || !symbol || symbol.length > 16) return null;
  if (typeof price !== "number" || !Number.isFinite(price)) return null;
  return {
    id: message.id,
    symbol,
    price,
    change: typeof change === "number" && Number.isFinite(change) ? change : 0,
    line: typeof message.content === "string" ? message.content : "",
  };
}

function apply(message) {
  const quote = quoteOf(message);
  if (quote === null || applied.has(quote.id)) return false;
  applied.add(quote.id);
  let points = series.get(quote.symbol);
  if (!points) {
    points = [];
    series.set(quote.symbol, points);
  }
  points.push(quote);
  points.sort((a, b) => a.id - b.id);
  if (points.length > WINDOW) points.splice(0, points.length - WINDOW);
  return true;
}

function render() {
  renderTable();
  renderChart();
  document.body.dataset.quotes = String(applied.size);
}

function renderTable() {
  const body = document.querySelector("#quotes tbody");
  const rows = [];
  for (const [symbol, points] of [...series].sort(([a], [b]) => a.localeCompare(b))) {
    const last = points[points.length - 1];
    const row = document.createElement("tr");
    row.dataset.symbol = symbol;
    row.dataset.id = String(last.id);
    const direction = last.change > 0 ? "up" : last.change < 0 ? "down" : "";
    row.append(
      cell(symbol),
      cell(last.price.toFixed(2), "number"),
      cell(`${last.change > 0 ? "+" : ""}${last.change.toFixed(2)}%`, `number ${direction}`),
      cell(last.line, "line"),
    );
    rows.push(row);
  }
  body.replaceChildren(...rows);
}

function cell(text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderChart() {
  const chart = document.getElementById("chart");
  const all = [...series.values()].flat();
  const shapes = [];
  if (all.length > 0) {
    const changes = all.map((point) => point.change);
    const top = Math.max(0.1, ...changes);
    const bottom = Math.min(-0.1, ...changes);
    const y = (change) => PAD + ((top - change) / (top - bottom)) * (HEIGHT - 2 * PAD);
    const zero = document.createElementNS(SVG, "line");
    zero.setAttribute("class", "zero");
    zero.setAttribute("x1", String(PAD));
    zero.setAttribute("x2", String(WIDTH - PAD));
    zero.setAttribute("y1", String(y(0)));
    zero.setAttribute("y2", String(y(0)));
    shapes.push(zero);
    const symbols = [...series.keys()].sort();
    symbols.forEach((symbol, index) => {
      const points = series.get(symbol);
      const step = (WIDTH - 2 * PAD - 60) / Math.max(1, WINDOW - 1);
      const line = document.createElementNS(SVG, "polyline");
      line.dataset.symbol = symbol;
      line.setAttribute("stroke", COLOURS[index % COLOURS.length]);
      line.setAttribute(
        "points",
        points.map((point, i) => `${PAD + i * step},${y(point.change).toFixed(1)}`).join(" "),
      );
      shapes.push(line);
      const label = document.createElementNS(SVG, "text");
      const last = points[points.length - 1];
      label.setAttribute("x", String(PAD + (points.length - 1) * step + 6));
      label.setAttribute("y", String(y(last.change) + 4));
      label.textContent = symbol;
      shapes.push(label);
    });
  }
  chart.replaceChildren(...shapes);
}

client.on("message", (message) => {
  if (message.room === room && apply(message)) render();
});
client.on("reset", ({ room: reset }) => {
  // The server's store went back: the ids seen mean other messages now.
  if (reset !== room) return;
  series.clear();
  applied.clear();
  render();
});
client.on("state", ({ state }) => {
  const status = document.getElementById("status");
  status.dataset.state = state;
  status.textContent = state === "connected" ? "live" : state;
});

async function start() {
  client.connect();
  await client.join(room, { watch: true });
  // The recent quotes, for a chart that starts full; live ones overlapping them count once.
  let page;
  try {
    page = await client.history(room, { limit: 100 });
  } catch {
    return; // cut off by a drop: the rejoin replays what follows, the chart starts later
  }
  let changed = false;
  for (const message of page.messages) changed = apply(message) || changed;
  if (changed || applied.size === 0) render();
}

start().catch((error) => {
  const status = document.getElementById("status");
  status.dataset.state = "failed";
  status.textContent = `could not join: ${error.message}`;
});
