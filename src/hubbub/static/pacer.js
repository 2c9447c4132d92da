// When the next message may go out, from what the server's `rate_limited`
// errors said (the same rule as hubbub.reconnecting.Pacer): nothing before the
// latest `retry_after`, and for a while after a refusal messages are spaced by
// the longest `retry_after` seen, which is the server's time per message. Only
// waiting would not do: sending again at once after each accepted message is
// refused every other time, and the server closes a connection that keeps
// being refused.

export const PACE_MEMORY_MS = 10_000;

export class Pacer {
  constructor() {
    this.resumeAt = 0;
    this.interval = 0;
    this.pacingUntil = -Infinity;
    this.lastSent = -Infinity;
  }

  refused(retryAfterMs, now) {
    this.resumeAt = Math.max(this.resumeAt, now + retryAfterMs);
    const kept = now < this.pacingUntil ? this.interval : 0;
    this.interval = Math.max(kept, retryAfterMs);
    this.pacingUntil = now + PACE_MEMORY_MS;
  }

  /** Sends nothing for `delayMs` (the server is unavailable), without pacing after. */
  pause(delayMs, now) {
    this.resumeAt = Math.max(this.resumeAt, now + delayMs);
  }

  sent(now) {
    this.lastSent = now;
  }

  nextSendAt(now) {
    if (now < this.pacingUntil) return Math.max(this.resumeAt, this.lastSent + this.interval);
    return this.resumeAt;
  }
}

/** An error's `retry_after` in milliseconds, or null when it has none. */
export function retryAfterMs(event) {
  const seconds = event?.retry_after;
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds >= 0
    ? seconds * 1000
    : null;
}
