/**
 * What `task watch` prints: a plain line per event, or on a terminal a live frame with a progress bar. Client names
 * and result messages are the clients' words: escaped, so they cannot draw on the operator's screen.
 */
import { escapeUnprintable, type TaskProgress, type TaskStreamEvent, type TaskView } from '../lib/index.js';

/** One plain line for an event. */
export function watchLine(event: TaskStreamEvent): string {
  if (event.type === 'change') {
    const change = event.change;
    const who = change.identity ? `${change.name ? escapeUnprintable(change.name) : '(no name)'} ${change.identity.slice(0, 16)}` : 'task';
    // An applied client's result message is just "applied"; repeating the state says nothing.
    const detail = change.detail && change.detail !== change.state ? `: ${escapeUnprintable(change.detail)}` : '';
    return `${change.at} ${who} ${change.state}${detail}`;
  }
  if (event.type === 'progress') {
    const { transfers, totalBytes } = event.progress;
    return `receiving: ${transfers.map((transfer) => `${transfer.name ? escapeUnprintable(transfer.name) : '(no name)'} ${transfer.identity.slice(0, 16)} ${formatBytes(transfer.bytesSent)} of ${formatBytes(totalBytes)}`).join(', ') || 'none'}`;
  }
  const task = event.task;
  const prefix = event.type === 'end' ? 'ended' : 'task';
  return `${prefix} ${task.id} ${task.state}: ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving${task.counts.interrupted > 0 ? `, ${task.counts.interrupted} interrupted` : ''}`;
}

/** Bytes as the frame shows them: B, KiB, MiB or GiB with one decimal. */
function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const BAR_WIDTH = 30;

// Without maxClients nothing says how many clients will come, so there is no fraction to draw: a bar that filled up
// once every client seen so far had applied looked finished while the task went on taking pulls.
function appliedLine(task: TaskView): string {
  if (task.maxClients === null) return `${task.counts.applied} applied of ${task.clients.length} seen (no --max-clients: open until it expires or is cancelled)`;
  const filled = Math.min(BAR_WIDTH, Math.floor((task.counts.applied / task.maxClients) * BAR_WIDTH));
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${task.counts.applied}/${task.maxClients} applied`;
}

/** One line per client receiving now: its bytes of the task's total. */
function transferLines(progress: TaskProgress | null): string[] {
  if (progress === null || progress.transfers.length === 0) return [];
  const shown = progress.transfers.slice(0, MAX_TRANSFER_LINES).map((transfer) => {
    const percent = progress.totalBytes === 0 ? 100 : Math.floor((transfer.bytesSent / progress.totalBytes) * 100);
    return `  receiving ${transfer.name ? escapeUnprintable(transfer.name) : '(no name)'} ${transfer.identity.slice(0, 16)}  ${formatBytes(transfer.bytesSent)} of ${formatBytes(progress.totalBytes)} (${percent}%)\n`;
  });
  const more = progress.transfers.length - shown.length;
  return [...shown, ...(more > 0 ? [`  and ${more} more receiving\n`] : []), '\n'];
}

/** At most this many receiving clients get a line of their own in a frame. */
const MAX_TRANSFER_LINES = 8;

/** A full-screen frame: clears the screen, then the bar, the counts, the transfers in progress and the latest events. */
export function renderWatchFrame(task: TaskView, recent: readonly string[], progress: TaskProgress | null = null): string {
  return [
    '\u001b[H\u001b[2J',
    `task ${task.id}${task.name ? ` (${escapeUnprintable(task.name)})` : ''}  ${task.state}  expires ${task.expiresAt}\n`,
    `${appliedLine(task)}\n`,
    `connected ${task.counts.connected}  receiving ${task.counts.offered}  applied ${task.counts.applied}  failed ${task.counts.failed}  revoked ${task.counts.revoked}  interrupted ${task.counts.interrupted}\n\n`,
    ...transferLines(progress),
    ...recent.map((line) => `${line}\n`),
  ].join('');
}

const TASK_END_STATES = new Set(['cancelled', 'completed']);
type ClientState = TaskView['clients'][number]['state'];

/**
 * The task as a terminal frame shows it, kept up to date from the change events alone: a frame per change then
 * costs the same however many clients the task has (re-reading the whole task per change did not).
 */
export class WatchedTask {
  #view: TaskView;
  readonly #stateByIdentity = new Map<string, ClientState>();

  constructor(view: TaskView) {
    this.#view = view;
    for (const client of view.clients) this.#stateByIdentity.set(client.identity, client.state);
  }

  get view(): TaskView {
    return this.#view;
  }

  /** Counts the client of `event` in its new state (a task-level change sets the task's state). */
  apply(event: Extract<TaskStreamEvent, { type: 'change' }>): void {
    const change = event.change;
    if (change.identity === null) {
      if (TASK_END_STATES.has(change.state)) this.#view = { ...this.#view, state: change.state as TaskView['state'] };
      return;
    }
    const state = change.state as ClientState;
    if (!(state in this.#view.counts)) return;
    const counts = { ...this.#view.counts };
    const previous = this.#stateByIdentity.get(change.identity);
    if (previous !== undefined) counts[previous] -= 1;
    counts[state] += 1;
    this.#stateByIdentity.set(change.identity, state);
    // renderWatchFrame reads the number of clients, not their rows: the list is not copied per change.
    this.#view = { ...this.#view, counts, clients: previous === undefined ? [...this.#view.clients, { identity: change.identity, name: change.name ?? '', remoteAddress: '', state, firstSeenAt: change.at, updatedAt: change.at, result: null }] : this.#view.clients };
  }
}
