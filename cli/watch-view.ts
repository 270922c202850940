/** What `task watch` prints: a plain line per event, or on a terminal a live frame with a progress bar. */
import type { TaskStreamEvent, TaskView } from '../lib/index.js';

/** One plain line for an event. */
export function watchLine(event: TaskStreamEvent): string {
  if (event.type === 'change') {
    const change = event.change;
    const who = change.identity ? `${change.name || '(no name)'} ${change.identity.slice(0, 16)}` : 'task';
    return `${change.at} ${who} ${change.state}${change.detail ? `: ${change.detail}` : ''}`;
  }
  const task = event.task;
  const prefix = event.type === 'end' ? 'ended' : 'task';
  return `${prefix} ${task.id} ${task.state}: ${task.counts.applied}${task.maxClients === null ? '' : `/${task.maxClients}`} applied, ${task.counts.failed} failed, ${task.counts.offered} receiving`;
}

/** A full-screen frame: clears the screen, then the bar, the counts and the latest events. */
export function renderWatchFrame(task: TaskView, recent: readonly string[]): string {
  const expected = task.maxClients ?? Math.max(task.clients.length, 1);
  const width = 30;
  const filled = Math.min(width, Math.round((task.counts.applied / expected) * width));
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${task.counts.applied}/${task.maxClients ?? task.clients.length} applied`;
  return [
    '\u001b[H\u001b[2J',
    `task ${task.id}${task.name ? ` (${task.name})` : ''}  ${task.state}  expires ${task.expiresAt}\n`,
    `${bar}\n`,
    `connected ${task.counts.connected}  receiving ${task.counts.offered}  applied ${task.counts.applied}  failed ${task.counts.failed}  revoked ${task.counts.revoked}\n\n`,
    ...recent.map((line) => `${line}\n`),
  ].join('');
}
