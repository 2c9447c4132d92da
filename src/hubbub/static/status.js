// The connection state as the reader sees it: connected, connecting,
// reconnecting in N s (with a button to try now), offline, or not connected
// because the server refused the page, with why and what to do about it.

export function statusText({ state, retryAt }, now = Date.now()) {
  switch (state) {
    case "connected":
      return "Connected";
    case "offline":
      return "Offline";
    case "refused":
      return "Not connected";
    case "reconnecting":
      if (retryAt === null) return "Reconnecting…";
      return `Reconnecting in ${Math.max(1, Math.ceil((retryAt - now) / 1000))} s`;
    default:
      return "Connecting…";
  }
}

export class ConnectionStatus {
  /**
   * @param {{root: HTMLElement, text: HTMLElement, retry: HTMLButtonElement,
   *          problem: HTMLElement, problemTitle: HTMLElement, problemDetail: HTMLElement,
   *          problemAdvice: HTMLElement,
   *          onRetry: () => void, onChange: (state: string) => void}} parts
   */
  constructor(parts) {
    Object.assign(this, parts);
    this.status = null;
    this.ticker = null;
    this.shownProblem = null;
    this.retry.addEventListener("click", () => this.onRetry());
  }

  render(status) {
    if (this.status !== status) {
      const previous = this.status?.state;
      this.status = status;
      clearInterval(this.ticker);
      this.ticker = status.retryAt === null ? null : setInterval(() => this.paint(), 1000);
      if (previous !== undefined && previous !== status.state) {
        this.onChange(status.state, previous);
      }
    }
    this.paint();
  }

  paint() {
    const { state, retryAt, problem = null } = this.status;
    this.root.dataset.state = state;
    this.text.textContent = statusText(this.status);
    this.retry.hidden = !(state === "refused" || (state === "reconnecting" && retryAt !== null));
    this.retry.textContent = state === "refused" ? "Try again" : "Retry now";
    // A problem stays up while reconnecting, and goes once a connection opens.
    const shown = state === "connected" ? null : problem;
    if (shown === this.shownProblem) return;
    this.shownProblem = shown;
    this.problem.hidden = shown === null;
    this.problemTitle.textContent = shown?.title ?? "";
    this.problemDetail.textContent = shown?.detail ?? "";
    this.problemAdvice.textContent = shown?.advice ?? "";
  }
}
