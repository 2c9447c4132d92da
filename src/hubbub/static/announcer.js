// Screen reader announcements through one polite live region: new messages
// from others and connection changes. A burst is summed up, not read out.

const BURST_MS = 400;

export class Announcer {
  constructor(region) {
    this.region = region;
    this.queue = [];
    this.timer = null;
  }

  message(room, message, active) {
    const where = active ? "" : ` in #${room.name}`;
    this.queue.push({ text: `${message.from}${where}: ${message.content}`, room: room.name });
    this.timer ??= setTimeout(() => this.flush(), BURST_MS);
  }

  say(text) {
    // Clearing first makes a repeated text be read again.
    this.region.textContent = "";
    setTimeout(() => {
      this.region.textContent = text;
    }, 50);
  }

  flush() {
    const queue = this.queue;
    this.queue = [];
    this.timer = null;
    if (queue.length === 1) {
      this.say(queue[0].text);
    } else if (queue.length > 1) {
      const rooms = new Set(queue.map((item) => item.room));
      const where = rooms.size === 1 ? ` in #${queue[0].room}` : "";
      this.say(`${queue.length} new messages${where}`);
    }
  }
}
