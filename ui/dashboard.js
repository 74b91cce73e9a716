// The home dashboard: a card per mailbox (connection, the last 24 hours by status, the oldest
// email not yet finished; each links to the mailbox's log), emails per hour over 24 hours and
// per day over 30 days (uPlot, ui/vendor), and the database's size.

import * as backend from './backend.js';
import { h } from './dom.js';
import { t } from './i18n.js';

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
      card.credential_expires_at ? h('dt', {}, t('Credential expires')) : null,
      card.credential_expires_at ? h('dd', {}, card.credential_expires_at.slice(0, 10)) : null));
}

/** A bar chart of `buckets` (processed, failed, skipped) drawn by uPlot into `el`. */
function chart(el, buckets, { hourly }) {
  if (!window.uPlot) throw new Error(t('the chart library (ui/vendor/uPlot.iife.min.js) did not load'));
  const style = getComputedStyle(document.documentElement);
  const colour = (v) => style.getPropertyValue(v.slice(4, -1)).trim() || '#888';
  const xs = buckets.map((b) => Date.parse(b.start) / 1000);
  const data = [xs, ...STATUSES.map(([s]) => buckets.map((b) => b[s]))];
  const bars = window.uPlot.paths.bars({ size: [0.6, 24] });
  const plot = new window.uPlot({
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
      ...STATUSES.map(([s, c]) => ({ label: t(s), stroke: colour(c), fill: colour(c), paths: bars, points: { show: false } })),
    ],
  }, data, el);
  return plot;
}

/** Renders the dashboard into a new element. */
export function dashboardView() {
  const view = h('div', { id: 'dashboard' },
    h('header', { class: 'view-header' }, h('h1', {}, t('Overview')),
      h('p', { class: 'subtle' }, t('Each mailbox\'s last 24 hours, and the mail processed over time.'))));
  const body = h('div', { class: 'dashboard-body' }, h('p', { class: 'subtle', id: 'dashboard-loading' }, t('Loading…')));
  view.append(body);
  Promise.all([backend.dashboard(), backend.engineStatus().catch(() => null)]).then(([d, engine]) => {
    const now = new Date(d.generated_at);
    const syncOf = (id) => engine?.mailboxes?.find((m) => m.mailbox_id === id);
    const hourly = h('div', { class: 'chart', id: 'chart-hourly' });
    const daily = h('div', { class: 'chart', id: 'chart-daily' });
    body.replaceChildren(
      h('section', { class: 'mailbox-cards', id: 'mailbox-cards' }, d.mailboxes.map((c) => mailboxCard(c, syncOf(c.id), now))),
      h('section', { class: 'charts' },
        h('article', { class: 'chart-card' }, h('h3', {}, t('Last 24 hours, per hour')), hourly),
        h('article', { class: 'chart-card' }, h('h3', {}, t('Last 30 days, per day')), daily)),
      h('p', { class: 'subtle', id: 'store-size' },
        t('Database: {size} ({free} free). Old attempts and request bodies are pruned every hour (mailroom retention).',
          { size: megabytes(d.store.bytes), free: megabytes(d.store.free_bytes) })));
    requestAnimationFrame(() => {
      for (const [el, buckets, hourlyChart] of [[hourly, d.hourly, true], [daily, d.daily, false]]) {
        try {
          chart(el, buckets, { hourly: hourlyChart });
        } catch (e) {
          el.replaceChildren(h('p', { class: 'callout error chart-error' }, t('The chart could not be drawn: {error}', { error: e.message })));
        }
      }
    });
  }).catch((e) => body.replaceChildren(h('p', { class: 'callout error', id: 'dashboard-error' }, e.message)));
  return view;
}
