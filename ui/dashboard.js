// The home dashboard: a card per mailbox (connection, the last 24 hours by status, the oldest
// email not yet finished; each links to the mailbox's log), emails per hour over 24 hours and
// per day over 30 days (uPlot, ui/vendor), requests to Graph and HaloPSA per hour, the PSA's
// rate-limit headroom, and the database's size with its retention settings.

import * as backend from './backend.js';
import { h, toast } from './dom.js';
import { t, verbatim } from './i18n.js';

const STATUSES = [
  ['processed', 'var(--ok)'],
  ['failed', 'var(--err)'],
  ['skipped', 'var(--muted)'],
];

/** "3 h 12 min" since `time`. */
function age(time, now) {
  const minutes = Math.max(0, Math.round((now - new Date(time)) / 60000));
  if (minutes < 60) return t('{n} min', { n: minutes });
  if (minutes < 48 * 60) return t('{h} h {m} min', { h: Math.floor(minutes / 60), m: minutes % 60 });
  return t('{n} days', { n: Math.floor(minutes / 1440) });
}

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function mailboxCard(card, sync, now) {
  const counts = card.last_24h;
  const link = `#/mailboxes/${encodeURIComponent(card.id)}/log`;
  const health = card.connected_account
    ? (sync?.error ? 'warning' : 'ok')
    : 'off';
  const healthText = card.connected_account
    ? (sync?.error ? t('Last scan failed: {error}', { error: sync.error }) : t('Connected as {account}', { account: card.connected_account }))
    : t('Not connected');
  const count = (status, label) => h('a', { class: `count count-${status}`, href: link, 'data-count': status },
    h('span', { class: 'count-n' }, String(counts[status])), h('span', { class: 'count-label' }, label));
  return h('article', { class: 'mailbox-card', 'data-card': card.name, 'data-health': health },
    h('header', {},
      h('h3', {}, h('a', { href: `#/mailboxes/${encodeURIComponent(card.id)}/incoming` }, card.name)),
      card.address ? h('span', { class: 'card-address' }, card.address) : null),
    h('p', { class: `health health-${health}`, title: healthText }, healthText),
    h('div', { class: 'counts', 'aria-label': t('Last 24 hours') },
      count('processed', t('processed')),
      count('skipped', t('skipped')),
      count('failed', t('failed')),
      count('retrying', t('retrying')),
      count('pending', t('pending'))),
    h('dl', { class: 'card-facts' },
      h('dt', {}, t('All time')),
      h('dd', { 'data-total': 'true' }, t('{processed} processed, {failed} failed, {skipped} skipped',
        { processed: card.total.processed, failed: card.total.failed, skipped: card.total.skipped })),
      h('dt', {}, t('Last scan')),
      h('dd', {}, sync?.last_sync_at ? t('{age} ago', { age: age(sync.last_sync_at, now) }) : '—'),
      h('dt', {}, t('Oldest unprocessed')),
      h('dd', { 'data-oldest': card.oldest_unfinished_at ? 'true' : 'false' },
        card.oldest_unfinished_at ? t('received {age} ago', { age: age(card.oldest_unfinished_at, now) }) : t('nothing waiting')),
      card.subscription_expires_at ? h('dt', {}, t('Subscription')) : null,
      card.subscription_expires_at ? h('dd', { 'data-subscription': 'true', title: new Date(card.subscription_expires_at).toLocaleString() },
        t('renewed before {date}', { date: card.subscription_expires_at.slice(0, 10) })) : null,
      card.credential_expires_at ? h('dt', {}, t('Credential expires')) : null,
      card.credential_expires_at ? h('dd', {}, card.credential_expires_at.slice(0, 10)) : null));
}

/**
 * A chart drawn by uPlot into `el`: `series` is a list of [key, colour, label, kind] read from
 * each of `buckets` (kind 'bar' or 'line').
 */
function chart(el, buckets, { hourly, series }) {
  if (!window.uPlot) throw new Error(t('the chart library (ui/vendor/uPlot.iife.min.js) did not load'));
  const style = getComputedStyle(document.documentElement);
  const colour = (v) => style.getPropertyValue(v.slice(4, -1)).trim() || '#888';
  const xs = buckets.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...series.map(([key]) => buckets.map((b) => b[key]))];
  const bars = window.uPlot.paths.bars({ size: [0.6, 24] });
  return new window.uPlot({
    width: Math.max(320, el.clientWidth || 520),
    height: 180,
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { stroke: colour('var(--muted)'), grid: { show: false }, values: hourly ? '{HH}:00' : '{D} {MMM}' },
      { stroke: colour('var(--muted)'), grid: { stroke: colour('var(--line)') } },
    ],
    series: [
      {},
      ...series.map(([, c, label, kind]) => (kind === 'line'
        ? { label, stroke: colour(c), width: 2, points: { show: false } }
        : { label, stroke: colour(c), fill: colour(c), paths: bars, points: { show: false } })),
    ],
  }, data, el);
}

const EMAIL_SERIES = () => STATUSES.map(([s, c]) => [s, c, t(s), 'bar']);
const REQUEST_SERIES = () => [
  ['graph', 'var(--accent)', verbatim('Microsoft Graph'), 'line'],
  ['psa', 'var(--ok)', verbatim('HaloPSA'), 'line'],
  ['throttled', 'var(--warn)', t('throttled (429)'), 'bar'],
  ['failed', 'var(--err)', t('failed (5xx, no answer)'), 'bar'],
];

/** The PSA: connected or not, the rate limit's rolling window, 429 back-off, the last hour. */
function psaCard(conn, usage, lastHour) {
  if (!conn) {
    return h('article', { class: 'status-card', id: 'psa-status', 'data-health': 'off' },
      h('h3', {}, verbatim('HaloPSA')),
      h('p', { class: 'health health-off' }, t('Not connected: no ticket is created until it is.')),
      h('a', { class: 'button small', href: '#/integration' }, t('Set up the integration')));
  }
  const failing = lastHour && lastHour.psa > 0 && lastHour.psa_failed >= lastHour.psa;
  const health = usage?.backing_off || failing ? 'warning' : 'ok';
  const healthText = usage?.backing_off
    ? t('Rate limited: requests wait until {time}', { time: new Date(usage.resume_at).toLocaleTimeString() })
    : failing ? t('Not answering: every request of the last hour failed') : t('Reachable');
  const used = usage ? usage.used : 0;
  const limit = usage ? usage.limit : null;
  const meter = limit ? h('progress', { class: 'meter', max: String(limit), value: String(used), 'aria-label': t('Rate limit used') }) : null;
  return h('article', { class: 'status-card', id: 'psa-status', 'data-health': health },
    h('h3', {}, verbatim('HaloPSA')),
    h('p', { class: `health health-${health}`, title: conn.base_url }, healthText),
    h('dl', { class: 'card-facts' },
      h('dt', {}, t('Rate limit')),
      h('dd', { id: 'psa-headroom' }, limit
        ? t('{left} of {limit} requests left in the rolling {minutes} minutes', { left: limit - used, limit, minutes: Math.round(usage.window_secs / 60) })
        : t('known once mail is processed')),
      meter ? h('dd', { class: 'meter-row' }, meter) : null,
      h('dt', {}, t('Last hour')),
      h('dd', {}, t('{n} requests, {throttled} throttled, {failed} failed', { n: lastHour?.psa ?? 0, throttled: lastHour?.psa_throttled ?? 0, failed: lastHour?.psa_failed ?? 0 })),
      usage ? h('dt', {}, t('429 answers')) : null,
      usage ? h('dd', {}, t('{n} since Mailroom started', { n: usage.rate_limited_total })) : null),
    batchingForm());
}

/**
 * Batched writes: how many tickets (or replies, or new users) share one request to HaloPSA and
 * how long an email waits for others — folded under a summary of the current values.
 */
function batchingForm() {
  const summary = h('summary', { id: 'batching-summary' }, t('Batched writes'));
  const records = h('input', { id: 'batching-records', type: 'number', min: '1', max: '100', required: true });
  const wait = h('input', { id: 'batching-wait', type: 'number', min: '0', max: '2000', step: '10', required: true });
  const error = h('p', { class: 'form-error', id: 'batching-error', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', class: 'button', id: 'batching-save' }, t('Save'));
  const show = (b) => {
    records.value = String(b.max_records);
    wait.value = String(b.max_wait_ms);
    summary.textContent = t('Batched writes: up to {records} per request, waiting at most {ms} ms', { records: b.max_records, ms: b.max_wait_ms });
  };
  const form = h('form', { class: 'retention-form', id: 'batching-form' },
    h('p', { class: 'subtle form-hint' }, t('Emails processed at the same time share one request to HaloPSA, which spares its rate limit. A lone email is sent at once; 1 sends every ticket on its own.')),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Records per request')), records),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Longest wait (ms)')), wait),
    error, h('div', { class: 'form-actions' }, save));
  backend.psaBatchingGet().then(show).catch((e) => showError(error, e));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const batching = { max_records: Number(records.value), max_wait_ms: Number(wait.value) };
    if (!Number.isInteger(batching.max_records) || !Number.isInteger(batching.max_wait_ms)) {
      showError(error, { message: t('Enter whole numbers: 1 to 100 records, 0 to 2,000 ms.') });
      return;
    }
    try {
      show(await backend.psaBatchingSet(batching));
      toast(t('Batching saved; the next emails use it.'));
    } catch (e) {
      showError(error, e);
    }
  });
  return h('details', { class: 'batching', id: 'batching' }, summary, form);
}

/** Shows a form's error (`e.code`, when the backend gave one, for the tests). */
function showError(el, e) {
  el.textContent = e.message;
  if (e.code) el.dataset.code = e.code;
  el.hidden = false;
}

/** The database: its size, how long things are kept, *Prune now*. */
function storageCard(size) {
  const sizeLine = h('p', { class: 'subtle', id: 'store-size' },
    t('Database: {size} ({free} free). Old attempts and request bodies are pruned every hour.',
      { size: megabytes(size.bytes), free: megabytes(size.free_bytes) }));
  const bodies = h('input', { id: 'retention-bodies', type: 'number', min: '1', max: '3650', required: true });
  const attempts = h('input', { id: 'retention-attempts', type: 'number', min: '1', max: '3650', required: true });
  const error = h('p', { class: 'form-error', id: 'retention-error', role: 'alert', hidden: true });
  const save = h('button', { type: 'submit', class: 'button', id: 'retention-save' }, t('Save'));
  const prune = h('button', { type: 'button', class: 'button', id: 'retention-prune' }, t('Prune now'));
  const form = h('form', { class: 'retention-form', id: 'retention-form' },
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Keep request and response bodies (days)')), bodies),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Keep attempts, requests and processing logs (days)')), attempts),
    error, h('div', { class: 'form-actions' }, save, prune));
  backend.retentionGet().then((r) => {
    bodies.value = String(r.request_bodies_days);
    attempts.value = String(r.attempts_days);
  }).catch((e) => showError(error, e));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const settings = { request_bodies_days: Number(bodies.value), attempts_days: Number(attempts.value) };
    if (!Number.isInteger(settings.request_bodies_days) || !Number.isInteger(settings.attempts_days)) {
      showError(error, { message: t('Enter whole days, from 1 to 3650.') });
      return;
    }
    try {
      await backend.retentionSet(settings);
      toast(t('Retention saved; the next pruning pass applies it.'));
    } catch (e) {
      showError(error, e);
    }
  });
  prune.addEventListener('click', async () => {
    prune.disabled = true;
    try {
      const r = await backend.retentionPruneNow();
      toast(t('Pruned {attempts} attempts and {bodies} request bodies; {freed} given back to the disk.',
        { attempts: r.attempts, bodies: r.request_bodies, freed: megabytes(r.reclaimed_bytes) }));
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      prune.disabled = false;
    }
  });
  return h('article', { class: 'status-card storage-card', id: 'storage' },
    h('h3', {}, t('Storage')), sizeLine, form);
}

/** Renders the dashboard into a new element. */
export function dashboardView() {
  const view = h('div', { id: 'dashboard' },
    h('header', { class: 'view-header' }, h('h1', {}, t('Overview')),
      h('p', { class: 'subtle' }, t('Each mailbox\'s last 24 hours, and the mail processed over time.'))));
  const body = h('div', { class: 'dashboard-body' }, h('p', { class: 'subtle', id: 'dashboard-loading' }, t('Loading…')));
  view.append(body);
  Promise.all([backend.dashboard(), backend.engineStatus().catch(() => null), backend.psaConnectionGet().catch(() => null)]).then(([d, engine, conn]) => {
    const now = new Date(d.generated_at);
    const syncOf = (id) => engine?.mailboxes?.find((m) => m.mailbox_id === id);
    const hourly = h('div', { class: 'chart', id: 'chart-hourly' });
    const daily = h('div', { class: 'chart', id: 'chart-daily' });
    const requests = h('div', { class: 'chart', id: 'chart-requests' });
    body.replaceChildren(
      h('section', { class: 'mailbox-cards', id: 'mailbox-cards' }, d.mailboxes.map((c) => mailboxCard(c, syncOf(c.id), now))),
      h('section', { class: 'charts' },
        h('article', { class: 'chart-card' }, h('h3', {}, t('Last 24 hours, per hour')), hourly),
        h('article', { class: 'chart-card' }, h('h3', {}, t('Last 30 days, per day')), daily)),
      h('section', { class: 'charts' },
        h('article', { class: 'chart-card' }, h('h3', {}, t('Requests while processing mail, per hour')), requests),
        h('div', { class: 'side-cards' }, psaCard(conn, engine?.psa, d.requests[d.requests.length - 1]), storageCard(d.store))));
    requestAnimationFrame(() => {
      for (const [el, buckets, hourlyChart, series] of [[hourly, d.hourly, true, EMAIL_SERIES()], [daily, d.daily, false, EMAIL_SERIES()], [requests, d.requests, true, REQUEST_SERIES()]]) {
        try {
          chart(el, buckets, { hourly: hourlyChart, series });
        } catch (e) {
          el.replaceChildren(h('p', { class: 'callout error chart-error' }, t('The chart could not be drawn: {error}', { error: e.message })));
        }
      }
    });
  }).catch((e) => body.replaceChildren(h('p', { class: 'callout error', id: 'dashboard-error' }, e.message)));
  return view;
}
