// The inbound log (per mailbox) and Monitoring (all mailboxes): every email with its status
// and ticket, filters, keyset paging, a details view with each attempt's requests and
// processing log, Reprocess, retry countdowns and live updates streamed over a Tauri Channel.
// All text goes through textContent (dom.js `h`).

import * as backend from './backend.js';
import { contactImportLog } from './contact-imports.js';
import { h, toast } from './dom.js';
import { N_, locale, t, tx, verbatim } from './i18n.js';
import { notificationsSection } from './notifications.js';
import { outboundSection } from './outbound-log.js';

const PAGE = 100;
const STATUSES = [
  ['', N_('All statuses')],
  ['processed', N_('Processed')],
  ['skipped', N_('Skipped')],
  ['failed', N_('Failed')],
  ['retrying', N_('Retrying')],
  ['pending', N_('Pending')],
];
/** An email's status as the log writes it (lower case, as a word in a sentence). */
const STATUS_WORDS = {
  processed: N_('processed'),
  skipped: N_('skipped'),
  failed: N_('failed'),
  retrying: N_('retrying'),
  pending: N_('pending'),
  processing: N_('processing'),
};
const statusWord = (status) => (STATUS_WORDS[status] ? t(STATUS_WORDS[status]) : status);

// One live subscription for the whole window; views register listeners. The engine starts
// with the app and keeps itself up: the window only shows its state (`engine` below), from
// `engine_status` once and then from the `engine` and `mailbox_sync` events.
const listeners = new Set();
let subscribed = false;
const engine = { state: { state: 'starting' }, statuses: new Map() };

function onBatch(events) {
  for (const event of events) {
    if (event.type === 'mailbox_sync') engine.statuses.set(event.mailbox_id, event);
    if (event.type === 'engine') engine.state = event;
  }
  for (const listener of listeners) listener(events);
}

async function ensureSubscribed() {
  if (subscribed) return;
  subscribed = true;
  try {
    await backend.inboundSubscribe(onBatch);
  } catch (error) {
    subscribed = false;
    toast(t('Live updates are unavailable: {error}', { error: error.message }), 'error');
  }
}

function applyStatus(status) {
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

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(locale());
}

function countdown(iso) {
  const secs = Math.max(0, Math.round((new Date(iso) - Date.now()) / 1000));
  if (secs >= 3600) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  if (secs >= 60) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${secs} s`;
}

/** "5 min ago", "3 h ago", "2 days ago"; the absolute time is the cell's tooltip. */
function relTime(iso) {
  const minutes = Math.round((Date.now() - new Date(iso)) / 60000);
  if (minutes < 1) return t('just now');
  if (minutes < 60) return t('{n} min ago', { n: minutes });
  if (minutes < 48 * 60) return t('{n} h ago', { n: Math.round(minutes / 60) });
  return t('{n} days ago', { n: Math.round(minutes / 1440) });
}

const STATUS_ICONS = { processed: '✓', skipped: '⤼', failed: '✕', retrying: '↻', pending: '…' };

function statusCell(email) {
  const el = h('span', { class: `status status-${email.status}`, 'data-status': email.status },
    h('span', { class: 'status-icon', 'aria-hidden': 'true' }, STATUS_ICONS[email.status] ?? ''),
    statusWord(email.status));
  if (email.status === 'retrying' && email.next_attempt_at) {
    const next = h('span', { class: 'countdown', 'data-countdown': email.next_attempt_at });
    next.textContent = t(' (next try in {wait})', { wait: countdown(email.next_attempt_at) });
    return h('span', {}, el, next);
  }
  return el;
}

function ticketCell(email) {
  if (!email.ticket_id) return email.skip_reason ? h('span', { class: 'subtle' }, email.skip_reason) : '';
  const what = email.outcome === 'action_added' ? t('Ticket {id} (update)', { id: email.ticket_id }) : t('Ticket {id}', { id: email.ticket_id });
  return h('span', { 'data-ticket': email.ticket_id }, what);
}

function row(email, { showMailbox, mailboxes, onOpen }) {
  const mailbox = showMailbox ? (mailboxes.find((m) => m.id === email.mailbox_id)?.name ?? '') : null;
  // ↑/↓ move between rows, Enter opens one, Esc (on the panel) closes it.
  const move = (tr, step) => {
    const next = step > 0 ? tr.nextElementSibling : tr.previousElementSibling;
    if (next) next.focus();
  };
  return h('tr', { 'data-email': email.id, class: 'log-row', tabindex: '0', onclick: () => onOpen(email),
    onkeydown: (e) => {
      if (e.key === 'Enter') onOpen(email);
      else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        move(e.currentTarget, e.key === 'ArrowDown' ? 1 : -1);
      }
    } },
  h('td', { title: fmtTime(email.received_at), 'data-time': email.received_at }, relTime(email.received_at)),
  showMailbox ? h('td', {}, mailbox) : null,
  h('td', { title: email.from_address }, email.from_name || email.from_address),
  h('td', {}, email.subject || t('(no subject)')),
  h('td', {}, statusCell(email)),
  h('td', {}, ticketCell(email)));
}

function requestView(r) {
  const summary = `${r.method} ${r.url} → ${r.status ?? r.error ?? t('no response')} (${r.duration_ms} ms)`;
  return h('details', { class: 'request' },
    h('summary', {}, summary),
    h('div', { class: 'request-body' },
      h('h4', {}, t('Request headers')),
      h('pre', {}, (r.request_headers || []).map(([k, v]) => `${k}: ${v}`).join('\n')),
      r.request_body ? [h('h4', {}, t('Request body')), h('pre', {}, r.request_body)] : null,
      h('h4', {}, t('Response headers')),
      h('pre', {}, (r.response_headers || []).map(([k, v]) => `${k}: ${v}`).join('\n')),
      r.response_body ? [h('h4', {}, t('Response body')), h('pre', {}, r.response_body)] : null));
}

function attemptView(a) {
  const result = a.result ?? t('running');
  return h('section', { class: 'attempt', 'data-attempt': a.number },
    h('h3', {}, t('Attempt {n} — {trigger} — {result}', { n: a.number, trigger: a.trigger, result })),
    h('p', { class: 'subtle' }, `${fmtTime(a.started_at)}${a.finished_at ? ` → ${fmtTime(a.finished_at)}` : ''}`),
    a.error_message ? h('p', { class: 'error-text' }, a.error_message, h('span', { class: 'error-code' }, a.error_code)) : null,
    h('h4', {}, t('Requests ({n})', { n: a.requests.length })),
    a.requests.length ? a.requests.map(requestView) : h('p', { class: 'subtle' }, t('No requests.')),
    h('h4', {}, t('Processing log')),
    h('ol', { class: 'processing-log' }, a.log.map((l) =>
      h('li', { class: `log-${l.level}` }, `${new Date(l.at).toLocaleTimeString(locale())} ${l.message}`))));
}

async function detailsView(email, close) {
  const panel = h('aside', { class: 'log-details', id: 'log-details', 'data-email': email.id });
  const reprocess = h('button', { class: 'button', id: 'reprocess', onclick: async () => {
    try {
      await backend.inboundReprocess(email.id);
      toast(t('Queued for processing again.'));
    } catch (error) {
      toast(error.message, 'error');
    }
  } }, t('Reprocess'));
  const header = h('header', { class: 'view-header' },
    h('div', { class: 'view-title' },
      h('h2', {}, email.subject || t('(no subject)')),
      reprocess,
      h('button', { class: 'button subtle-button', onclick: close }, t('Close'))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('From')), h('dd', {}, `${email.from_name} <${email.from_address}>`),
      h('dt', {}, t('Received')), h('dd', {}, fmtTime(email.received_at)),
      h('dt', {}, t('Status')), h('dd', {}, statusCell(email)),
      h('dt', {}, t('Ticket')), h('dd', {}, ticketCell(email)),
      email.skip_detail ? [h('dt', {}, t('Why skipped')), h('dd', {}, email.skip_detail)] : null,
      email.error_message ? [h('dt', {}, t('Last error')), h('dd', {}, email.error_message, h('span', { class: 'error-code' }, email.error_code))] : null,
      h('dt', {}, verbatim('Message-ID')), h('dd', {}, email.internet_message_id ?? '')));
  panel.append(header);
  try {
    const attempts = await backend.inboundAttempts(email.id);
    panel.append(h('div', { class: 'attempts' },
      attempts.length ? attempts.slice().reverse().map(attemptView)
        : h('p', { class: 'subtle', id: 'attempts-none' }, email.attempts > 0
          // Its attempts were older than the retention allows (mailroom retention).
          ? t('The details of its {n} attempt(s) were removed by retention (mailroom retention says how long they are kept).', { n: email.attempts })
          : t('Not processed yet.'))));
  } catch (error) {
    panel.append(h('p', { class: 'error-text' }, error.message));
  }
  return panel;
}

/**
 * The log list. `mailbox` = one mailbox (its Inbound log tab) or null (Monitoring).
 */
function logPanel({ mailbox, mailboxes }) {
  const query = { mailbox_id: mailbox ? mailbox.id : null, status: null, search: null, limit: PAGE };
  const items = [];
  const showMailbox = !mailbox;
  const tbody = h('tbody', { id: 'log-rows' });
  const counts = h('div', { class: 'log-counts', id: 'log-counts' });
  // The counts line follows the same events as the rows: `known` is the last status seen of
  // every email shown or streamed, so a change moves one count to another. An email never seen
  // (an old one retried) makes the counts reload once.
  const tally = new Map();
  const known = new Map();
  const paintCounts = () => {
    const order = ['processed', 'skipped', 'retrying', 'failed', 'pending'];
    counts.replaceChildren(...order.filter((s) => tally.get(s)).map((s) =>
      h('span', { class: `count-chip status-${s}`, 'data-count': s }, `${statusWord(s)}: ${tally.get(s)}`)));
  };
  const setCounts = (pairs) => {
    tally.clear();
    for (const [status, n] of pairs) tally.set(status, n);
    paintCounts();
  };
  // Each change moves a count at once, and asks the store for the counts shortly after
  // (debounced): a snapshot fetched while more events arrive is fetched again, so the line
  // always ends on the store's figures, whatever the order of events and replies.
  let countsTimer = null;
  let countsInFlight = false;
  let countsDirty = false;
  const reconcileCounts = () => {
    countsDirty = true;
    if (countsTimer || countsInFlight) return;
    countsTimer = setTimeout(async () => {
      countsTimer = null;
      countsDirty = false;
      countsInFlight = true;
      try {
        setCounts((await backend.inboundLog({ ...query, status: null, search: null, before: undefined, limit: 1 })).counts);
      } catch { /* the next load shows them */ } finally {
        countsInFlight = false;
        if (countsDirty) reconcileCounts();
      }
    }, 300);
  };
  const countEvent = (email, isNew) => {
    if (query.mailbox_id && email.mailbox_id !== query.mailbox_id) return;
    const previous = known.has(email.id) ? known.get(email.id) : (isNew ? null : undefined);
    known.set(email.id, email.status);
    if (previous !== undefined && previous !== email.status) {
      if (previous) tally.set(previous, Math.max(0, (tally.get(previous) ?? 0) - 1));
      tally.set(email.status, (tally.get(email.status) ?? 0) + 1);
      paintCounts();
    }
    reconcileCounts();
  };
  const more = h('button', { class: 'button', id: 'log-more', hidden: true, onclick: () => load(false) }, t('Load more'));
  const empty = h('p', { class: 'subtle empty-log', id: mailbox ? 'empty-inbound-log' : 'empty-monitoring', hidden: true },
    mailbox ? t('No email processed yet. Every email this mailbox receives appears here with its status, the ticket it created or updated, and each processing attempt.')
      : (mailboxes.length === 0
        ? t('Add a mailbox first; its emails will show here as they are processed, with retries and errors.')
        : t('No email processed yet. Emails of every mailbox appear here live as they are processed.')));
  const detailsSlot = h('div', { id: 'log-details-slot' });
  let loading = false;

  const open = async (email) => {
    const close = () => detailsSlot.replaceChildren();
    detailsSlot.replaceChildren(await detailsView(email, close));
  };

  function matches(email) {
    if (query.mailbox_id && email.mailbox_id !== query.mailbox_id) return false;
    if (query.status && email.status !== query.status) return false;
    if (query.search) return false; // search results are reloaded, not patched live
    return true;
  }

  function renderRows() {
    tbody.replaceChildren(...items.map((e) => row(e, { showMailbox, mailboxes, onOpen: open })));
    empty.hidden = items.length > 0;
  }

  async function load(reset) {
    if (loading) return;
    loading = true;
    try {
      if (reset) {
        items.length = 0;
        delete query.before;
      } else if (items.length) {
        const last = items[items.length - 1];
        query.before = [last.received_at, last.id];
      }
      const page = await backend.inboundLog(query);
      // Live events may have added rows while the page was on its way: those are newer, keep
      // them and skip the page's copy, so no email is listed twice.
      const shown = new Set(items.map((e) => e.id));
      items.push(...page.items.filter((e) => !shown.has(e.id)));
      for (const e of page.items) known.set(e.id, e.status);
      more.hidden = page.items.length < PAGE;
      setCounts(page.counts);
      renderRows();
    } catch (error) {
      toast(t('Could not load the inbound log: {error}', { error: error.message }), 'error');
    } finally {
      loading = false;
    }
  }

  const listener = (events) => {
    // The stream fell behind and dropped events: the rows cannot be patched, reload them.
    if (events.some((e) => e.type === 'resync')) { load(true); return; }
    let changed = false;
    for (const event of events) {
      if (event.type !== 'email') continue;
      const email = event.email;
      countEvent(email, event.new);
      const i = items.findIndex((e) => e.id === email.id);
      if (i >= 0) {
        if (matches(email) || !query.status) items[i] = email; else items.splice(i, 1);
        changed = true;
      } else if (matches(email)) {
        items.unshift(email);
        items.sort((a, b) => (a.received_at < b.received_at ? 1 : a.received_at > b.received_at ? -1 : b.id - a.id));
        changed = true;
      }
      const open = detailsSlot.querySelector(`[data-email="${email.id}"]`);
      if (open && event.type === 'email') {
        detailsView(email, () => detailsSlot.replaceChildren()).then((p) => detailsSlot.replaceChildren(p));
      }
    }
    if (changed) renderRows();
  };

  const statusSelect = h('select', { id: 'log-status', 'aria-label': t('Status'),
    onchange: (e) => { query.status = e.target.value || null; load(true); } },
  STATUSES.map(([v, label]) => h('option', { value: v }, t(label))));
  let searchTimer;
  const search = h('input', { type: 'search', id: 'log-search', placeholder: t('Search sender or subject'), 'aria-label': t('Search'),
    oninput: (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => { query.search = e.target.value.trim() || null; load(true); }, 250);
    } });

  const exportButton = h('button', { class: 'button', id: 'log-export', onclick: async (e) => {
    e.target.disabled = true;
    try {
      const done = await backend.inboundExportCsv({ ...query, before: null, limit: null });
      if (done) toast(t('Exported {rows} emails to {path}.', done));
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      e.target.disabled = false;
    }
  } }, t('Export CSV'));
  const toolbar = h('div', { class: 'log-toolbar' }, statusSelect, search, exportButton,
    mailbox ? h('button', { class: 'button', id: 'import-now', onclick: async (e) => {
      e.target.disabled = true;
      try {
        const r = await backend.inboundImportNow(mailbox.id);
        toast(t('Import finished: {new} new, {processed} processed, {skipped} skipped, {failed} failed, {retrying} to retry.', r));
        load(true);
      } catch (error) {
        toast(error.message, 'error');
      } finally {
        e.target.disabled = false;
      }
    } }, t('Import emails')) : null);

  const table = h('table', { class: 'log-table', id: 'inbound-log' },
    h('thead', {}, h('tr', {},
      h('th', {}, t('Received')), showMailbox ? h('th', {}, t('Mailbox')) : null,
      h('th', {}, t('From')), h('th', {}, t('Subject')), h('th', {}, t('Status')), h('th', {}, t('Ticket')))),
    tbody);
  const root = h('div', { class: 'inbound-log' }, toolbar, counts, table, empty, more, detailsSlot);
  // Esc closes an open email and puts the focus back on its row.
  root.addEventListener('keydown', (e) => {
    const shown = detailsSlot.querySelector('[data-email]');
    if (e.key !== 'Escape' || !shown) return;
    detailsSlot.replaceChildren();
    tbody.querySelector(`tr[data-email="${shown.dataset.email}"]`)?.focus();
  });

  // Live updates and countdowns while the panel is in the document.
  listeners.add(listener);
  const ticker = setInterval(() => {
    if (!root.isConnected) {
      listeners.delete(listener);
      clearInterval(ticker);
      return;
    }
    for (const el of root.querySelectorAll('[data-countdown]')) {
      el.textContent = t(' (next try in {wait})', { wait: countdown(el.dataset.countdown) });
    }
  }, 1000);
  ensureSubscribed();
  load(true);
  return root;
}

/** The *Inbound log* tab of a mailbox. */
export function inboundLogPanel(mailbox, mailboxes = []) {
  return logPanel({ mailbox, mailboxes });
}

/** No PSA connection yet: where to make one. */
function psaMissing() {
  return h('section', { class: 'psa-card', id: 'psa-missing' },
    h('div', { class: 'psa-card-head' },
      h('div', {}, h('h2', {}, t('HaloPSA is not connected')),
        h('p', { class: 'subtle' }, t('Mail is read but no ticket is created until Mailroom can sign in to your PSA.'))),
      h('a', { class: 'button primary', href: '#/integration', id: 'go-integration' }, t('Set up the integration'))));
}

function engineLine(mailboxes) {
  const el = h('div', { class: 'engine-status', id: 'engine-status' });
  const paint = () => {
    const st = engine.state;
    if (st.state !== 'running' && !(st.state === 'degraded' && st.mailboxes > 0)) {
      const text = {
        starting: t('Starting…'),
        degraded: st.retry_at
          ? t('Not processing: {reason} (trying again at {time})', { reason: st.reason, time: fmtTime(st.retry_at) })
          : t('Not processing: {reason}', { reason: st.reason }),
        stopping: t('Stopping…'),
        stopped: t('Stopped.'),
      }[st.state] ?? t('Not processing yet.');
      el.replaceChildren(h('p', { class: st.state === 'degraded' ? 'error-text' : 'subtle', 'data-engine-state': st.state }, text));
      return;
    }
    const rows = mailboxes.map((m) => {
      const s = engine.statuses.get(m.id);
      const text = s ? `${s.state}${s.last_sync_at ? t(', last scan {time}', { time: fmtTime(s.last_sync_at) }) : ''}${s.error ? ` — ${s.error}` : ''}` : t('not synced (connect it first)');
      return h('li', { 'data-mailbox-status': m.id }, `${m.name}: ${text}`);
    });
    const degraded = st.state === 'degraded'
      ? h('p', { class: 'error-text', 'data-engine-state': st.state }, t('Degraded: {reason}', { reason: st.reason }))
      : null;
    const dropped = engine.dropped
      ? h('p', { class: 'callout warning', id: 'dropped-notifications' },
        t('The webhook receiver turned away {n} notification(s) because its queue was full; Microsoft Graph sends them again, and the fallback scan catches any it gives up on.', { n: engine.dropped }))
      : null;
    el.replaceChildren(...[degraded, h('ul', { class: 'plain', 'data-engine-state': st.state }, rows), dropped].filter(Boolean));
  };
  paint();
  const listener = (events) => {
    if (!el.isConnected) { listeners.delete(listener); return; }
    if (events.some((e) => e.type === 'mailbox_sync' || e.type === 'engine')) paint();
  };
  listeners.add(listener);
  return { el, paint };
}

/** The PSA connection in one line: URL, client, tenant. */
export function connectionLine(conn) {
  return conn.tenant
    ? t('{url} · client {client} · tenant {tenant}', { url: conn.base_url, client: conn.client_id, tenant: conn.tenant })
    : t('{url} · client {client}', { url: conn.base_url, client: conn.client_id });
}

/** The PSA connection with *Test connection*: each check green or red, with its fix. */
function psaCard(conn) {
  const results = h('ul', { class: 'checks', id: 'psa-checks' });
  const button = h('button', { class: 'button', id: 'psa-test', type: 'button' }, t('Test connection'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    results.replaceChildren(h('li', { class: 'subtle' }, t('Checking…')));
    try {
      const report = await backend.psaTest();
      results.replaceChildren(...report.checks.map((c) =>
        h('li', { class: `check ${c.ok ? 'check-ok' : 'check-failed'}`, 'data-check': c.id, 'data-ok': String(c.ok) },
          h('span', { class: 'check-mark', 'aria-hidden': 'true' }, c.ok ? '✓' : '✕'),
          h('div', {},
            h('strong', {}, tx(c.label)), ' — ', tx(c.detail),
            c.fix ? h('div', { class: 'check-fix' }, t('Fix: {fix}', { fix: tx(c.fix) })) : null))));
    } catch (error) {
      results.replaceChildren(h('li', { class: 'check check-failed', 'data-code': error.code }, error.message));
    } finally {
      button.disabled = false;
    }
  });
  return h('section', { class: 'psa-card', id: 'psa-card' },
    h('div', { class: 'psa-card-head' },
      h('div', {}, h('h2', {}, verbatim('HaloPSA')),
        h('p', { class: 'subtle' }, connectionLine(conn))),
      button),
    results);
}

/** *Subscription events* of every Webhooks mailbox (Monitoring), polled while shown. */
function subscriptionEventsPanel(mailboxes) {
  const tbody = h('tbody', { id: 'subscription-events-rows' });
  const empty = h('p', { class: 'subtle', id: 'empty-subscription-events', hidden: true },
    t('No subscription events yet. Creating, renewing or cancelling a Webhooks mailbox\'s subscription, and lifecycle notifications, appear here.'));
  const root = h('section', { class: 'subscription-events', id: 'monitoring-subscription-events' },
    h('h2', {}, t('Subscription events')),
    h('table', { class: 'log-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('Time')), h('th', {}, t('Mailbox')), h('th', {}, t('Event')), h('th', {}, t('Detail')))),
      tbody),
    empty);
  let last = null;
  const refresh = async () => {
    try {
      const events = await backend.subscriptionEventsAll();
      const key = events.length ? `${events[0].id}:${events.length}` : '';
      if (key === last) return;
      last = key;
      tbody.replaceChildren(...events.map((e) => h('tr', { 'data-subscription-event': e.id, 'data-kind': e.kind },
        h('td', {}, fmtTime(e.at)),
        h('td', {}, mailboxes.find((m) => m.id === e.mailbox_id)?.name ?? e.mailbox_id),
        h('td', {}, e.kind),
        h('td', {}, e.detail))));
      empty.hidden = events.length > 0;
    } catch (error) {
      empty.hidden = false;
      empty.textContent = t('Could not load subscription events: {error}', { error: error.message });
    }
  };
  refresh();
  const timer = setInterval(() => {
    if (!root.isConnected) { clearInterval(timer); return; }
    refresh();
  }, 3000);
  return root;
}

/** The webhook receiver's settings: where Graph's notifications are received. */
function receiverSettings() {
  const error = h('p', { class: 'form-error', id: 'receiver-error', role: 'alert', hidden: true });
  const form = h('form', { class: 'form receiver-form', id: 'receiver-form' },
    h('h2', {}, t('Webhook receiver')),
    h('p', { class: 'subtle' }, t('Graph posts change notifications for Webhooks mailboxes here. Behind a tunnel or reverse proxy, enter its public HTTPS URL. Changes apply at the next start; recreate subscriptions after changing the URL or port.')),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Bind address')),
      h('input', { id: 'receiver-bind', placeholder: '127.0.0.1' })),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Port')),
      h('input', { id: 'receiver-port', type: 'number', min: '0', max: '65535', placeholder: '47130' })),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Public base URL')),
      h('input', { id: 'receiver-url', placeholder: 'https://hooks.example.com/mailroom' })),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Fallback scan every (minutes)')),
      h('span', { class: 'field-hint' }, t('Webhooks mailboxes are also read on this schedule, to catch notifications Microsoft Graph lost.')),
      h('input', { id: 'receiver-fallback', type: 'number', min: '1', max: '1440', placeholder: '15' })),
    error,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'button', id: 'receiver-save' }, t('Save receiver settings'))));
  let current = {};
  backend.webhookSettingsGet().then((s) => {
    current = s;
    form.querySelector('#receiver-bind').value = s.bind_address ?? '';
    form.querySelector('#receiver-port').value = s.port ?? '';
    form.querySelector('#receiver-url').value = s.public_base_url ?? '';
    form.querySelector('#receiver-fallback').value = s.fallback_interval_secs ? String(Math.round(s.fallback_interval_secs / 60)) : '';
  }).catch((e) => toast(e.message, 'error'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const text = (id) => form.querySelector(id).value.trim() || null;
    const port = text('#receiver-port');
    const fallback = text('#receiver-fallback');
    if (fallback !== null && !(Number(fallback) >= 1 && Number(fallback) <= 1440)) {
      error.textContent = t('The fallback scan interval must be between 1 and 1440 minutes.');
      error.dataset.code = 'invalid_input';
      error.hidden = false;
      return;
    }
    const settings = { ...current, bind_address: text('#receiver-bind'), port: port === null ? null : Number(port), public_base_url: text('#receiver-url'),
      fallback_interval_secs: fallback === null ? null : Math.round(Number(fallback) * 60) };
    try {
      await backend.webhookSettingsSet(settings);
      current = settings;
      toast(t('Receiver settings saved; they apply at the next start.'));
    } catch (e) {
      error.textContent = e.message;
      error.dataset.code = e.code;
      error.hidden = false;
    }
  });
  return form;
}

/** The global *Monitoring* view. */
export function monitoringPanel(mailboxes) {
  const body = h('div', {});
  const root = h('div', { id: 'monitoring' },
    h('header', { class: 'view-header' }, h('h1', {}, t('Monitoring')),
      h('p', { class: 'subtle' }, t('Every email across all mailboxes, as it is processed.'))),
    body);
  (async () => {
    // Fresh figures each time Monitoring opens (the dropped-notification count is not streamed).
    try { applyStatus(await backend.engineStatus()); } catch { /* the stream keeps the state */ }
    const status = engineLine(mailboxes);
    let conn = null;
    try { conn = await backend.psaConnectionGet(); } catch { conn = null; }
    const parts = [status.el];
    if (!conn) {
      parts.push(psaMissing());
    } else {
      parts.push(psaCard(conn));
    }
    parts.push(subscriptionEventsPanel(mailboxes));
    parts.push(logPanel({ mailbox: null, mailboxes }));
    parts.push(outboundSection(mailboxes));
    parts.push(contactImportLog(null, mailboxes).el);
    parts.push(notificationsSection(mailboxes));
    parts.push(receiverSettings());
    body.replaceChildren(...parts);
  })();
  return root;
}
