// One WebSocket to /ws that stays up: reconnects with exponential backoff and
// jitter, notices a dead link with an application `ping` when traffic is idle,
// and waits for the browser to come back online. When a connection never
// opens it asks the server why (see problems.js), and stops trying when
// trying cannot help (a refused token). It knows nothing about chat: the
// owner rejoins and resends from `onOpen`.

import { passedChecks, probeUpgrade, refusalProblem } from "./problems.js";

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 30_000;
/** A connection that lived this long was healthy: the next failure starts the backoff over. */
const STABLE_AFTER_MS = 5_000;
const IDLE_PING_AFTER_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const HEARTBEAT_CHECK_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Delay before reconnect attempt `attempt` (0-based): doubling up to a cap, and
 * only the upper half of it fixed so that a restarted server is not hit by every
 * client in the same instant.
 */
export function backoffDelay(attempt, random = Math.random) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return ceiling / 2 + (random() * ceiling) / 2;
}

export function socketUrl(location, token) {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  return url.href;
}

export class Connection {
  /**
   * @param {string} url
   * @param {{onOpen: () => void, onEvent: (event: object) => void,
   *          onStatus: (status: {state: string, retryAt: number|null,
   *                              problem: object|null}) => void}} handlers
   */
  constructor(url, handlers, { hasToken = false } = {}) {
    this.url = url;
    this.handlers = handlers;
    this.hasToken = hasToken;
    /** Why the last connections failed, as refusalProblem says; null once one opens. */
    this.problem = null;
    this.unexplained = 0;
    /** Bumped whenever a probe's answer would come too late to matter. */
    this.generation = 0;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.connectTimer = null;
    this.heartbeatTimer = null;
    this.openedAt = 0;
    this.lastReceivedAt = 0;
    this.pingSentAt = null;
    this.stopped = true;
    window.addEventListener("online", () => this.onBrowserOnline());
    window.addEventListener("offline", () => this.onBrowserOffline());
    document.addEventListener("visibilitychange", () => this.onVisible());
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /** Drops the current socket (if any) and connects again at once. */
  restart() {
    this.attempt = 0;
    this.problem = null;
    this.abandonSocket();
    this.connect();
  }

  reconnectNow() {
    if (this.stopped || this.socket) return;
    this.connect();
  }

  send(event) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(event));
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.generation += 1;
    if (navigator.onLine === false) {
      this.status("offline");
      return;
    }
    this.status(this.attempt === 0 ? "connecting" : "reconnecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    this.connectTimer = setTimeout(() => this.onClosed(), CONNECT_TIMEOUT_MS);
    socket.onopen = () => {
      clearTimeout(this.connectTimer);
      this.openedAt = Date.now();
      this.lastReceivedAt = this.openedAt;
      this.pingSentAt = null;
      this.problem = null;
      this.unexplained = 0;
      this.heartbeatTimer = setInterval(() => this.checkHeartbeat(), HEARTBEAT_CHECK_MS);
      this.status("connected");
      this.handlers.onOpen();
    };
    socket.onmessage = (frame) => this.receive(frame.data);
    socket.onclose = () => this.onClosed();
  }

  receive(data) {
    this.lastReceivedAt = Date.now();
    this.pingSentAt = null;
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    if (event && typeof event === "object" && event.type !== "pong") this.handlers.onEvent(event);
  }

  checkHeartbeat() {
    const now = Date.now();
    if (this.pingSentAt !== null) {
      // A half-open TCP connection never fires `close` by itself: give up on it.
      if (now - this.pingSentAt > PONG_TIMEOUT_MS) this.onClosed();
      return;
    }
    if (now - this.lastReceivedAt >= IDLE_PING_AFTER_MS) this.ping();
  }

  ping() {
    if (this.pingSentAt === null && this.send({ type: "ping" })) this.pingSentAt = Date.now();
  }

  onClosed() {
    const neverOpened = this.openedAt === 0;
    const wasStable = this.openedAt && Date.now() - this.openedAt >= STABLE_AFTER_MS;
    this.abandonSocket();
    if (this.stopped) return;
    if (wasStable) this.attempt = 0;
    if (navigator.onLine === false) {
      this.status("offline");
    } else if (neverOpened) {
      this.diagnose();
    } else {
      this.scheduleRetry();
    }
  }

  /** Asks the server why the upgrade failed, then retries or, when that cannot help, stops. */
  async diagnose() {
    const generation = this.generation;
    this.status("reconnecting");
    const answer = await probeUpgrade(this.url);
    if (generation !== this.generation || this.stopped || this.socket) return;
    this.unexplained = passedChecks(answer) ? this.unexplained + 1 : 0;
    this.problem = refusalProblem(answer, {
      origin: location.origin,
      hasToken: this.hasToken,
      unexplained: this.unexplained,
    });
    if (this.problem && !this.problem.retry) this.status("refused");
    else this.scheduleRetry();
  }

  scheduleRetry() {
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.status("reconnecting", Date.now() + delay);
  }

  abandonSocket() {
    clearTimeout(this.connectTimer);
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.openedAt = 0;
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = null;
    if (socket.readyState <= WebSocket.OPEN) socket.close();
  }

  onBrowserOnline() {
    if (this.stopped || this.socket) return;
    this.attempt = 0;
    this.connect();
  }

  onBrowserOffline() {
    if (this.isOpen) {
      this.ping(); // the link may well survive (a local server); let the heartbeat decide
    } else if (!this.stopped && !this.socket) {
      clearTimeout(this.retryTimer);
      this.status("offline");
    }
  }

  onVisible() {
    if (document.visibilityState !== "visible" || this.stopped) return;
    if (this.isOpen && Date.now() - this.lastReceivedAt > HEARTBEAT_CHECK_MS) this.ping();
    else if (!this.socket) this.connect();
  }

  status(state, retryAt = null) {
    this.handlers.onStatus({ state, retryAt, problem: this.problem });
  }
}
