// The engine's live events for the whole window: one Channel subscription, views register
// listeners. The engine starts with the app and keeps itself up: the window only shows its
// state (`engine` below), from `engine_status` once and then from the `engine` and
// `mailbox_sync` events.

import * as backend from './backend.js';
import { toast } from './dom.js';
import { t } from './i18n.js';

const listeners = new Set();
let subscribed = false;
/** The engine's last known state and each mailbox's sync status. */
export const engine = { state: { state: 'starting' }, statuses: new Map(), dropped: 0 };

function onBatch(events) {
  for (const event of events) {
    if (event.type === 'mailbox_sync') engine.statuses.set(event.mailbox_id, event);
    if (event.type === 'engine') engine.state = event;
  }
  for (const listener of listeners) listener(events);
}

export async function ensureSubscribed() {
  if (subscribed) return;
  subscribed = true;
  try {
    await backend.inboundSubscribe(onBatch);
  } catch (error) {
    subscribed = false;
    toast(t('Live updates are unavailable: {error}', { error: error.message }), 'error');
  }
}

/** Takes in an `engine_status` answer and tells the listeners. */
export function applyStatus(status) {
  engine.state = status.state;
  engine.dropped = status.dropped_notifications ?? 0;
  for (const s of status.mailboxes) engine.statuses.set(s.mailbox_id, s);
  for (const listener of listeners) listener([{ type: 'engine', ...status.state }]);
}

/** Calls `listener` with each batch of live events while `el` is in the document. */
export function onEngineEvents(el, listener) {
  const wrapped = (events) => {
    if (!el.isConnected) { listeners.delete(wrapped); return; }
    listener(events);
  };
  listeners.add(wrapped);
  ensureSubscribed();
}

/** Subscribes to live events and reads the engine's state once (at start-up). */
export async function watchEngine() {
  await ensureSubscribed();
  try {
    applyStatus(await backend.engineStatus());
  } catch (error) {
    toast(error.message, 'error');
  }
}

/** Asks the engine to pick up a change now (a mailbox connected, the PSA connection saved). */
export async function refreshEngine() {
  try {
    applyStatus(await backend.engineRefresh());
  } catch (error) {
    toast(error.message, 'error');
  }
}
