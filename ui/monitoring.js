// Monitoring: the engine's state, the PSA connection, subscription events, the inbound log
// of every mailbox, outbound mail, contact imports, notifications and the webhook receiver.

import * as backend from './backend.js';
import { contactImportLog } from './contact-imports.js';
import { h, toast } from './dom.js';
import { t, tx, verbatim } from './i18n.js';
import { logPanel } from './inbound-log.js';
import { fmtTime } from './log-cells.js';
import { applyStatus, engine, onEngineEvents } from './live.js';
import { notificationsSection } from './notifications.js';
import { outboundSection } from './outbound-log.js';
import { processesCard, sharedDatabaseSection } from './shared-database.js';

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
    const watching = st.state === 'watching';
    if (st.state !== 'running' && !watching && !(st.state === 'degraded' && st.mailboxes > 0)) {
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
      if (watching) {
        // What the workers recorded: their last scan of each mailbox.
        const text = s?.last_sync_at
          ? t('last scan by a worker {time}', { time: fmtTime(s.last_sync_at) })
          : t('not scanned by a worker yet');
        return h('li', { 'data-mailbox-status': m.id, 'data-state': s?.state ?? '' },
          `${m.name}: ${text}${s?.error ? ` — ${s.error}` : ''}`);
      }
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
    const watchingLine = watching
      ? h('p', { class: 'subtle', 'data-engine-state': 'watching' }, t('This workstation processes no mail: the Mailroom service on the shared database does, and its work shows here as it happens.'))
      : null;
    el.replaceChildren(...[watchingLine, degraded, h('ul', { class: 'plain', 'data-engine-state': st.state }, rows), dropped].filter(Boolean));
  };
  paint();
  onEngineEvents(el, (events) => {
    if (events.some((e) => e.type === 'mailbox_sync' || e.type === 'engine')) paint();
  });
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
    // Which database this run opened and what is saved: read once, for two sections.
    const consoleView = backend.consoleGet();
    const parts = [status.el, processesCard(consoleView)];
    if (!conn) {
      parts.push(psaMissing());
    } else {
      parts.push(psaCard(conn));
    }
    // The sections below, in the order an admin looks for them, with a bar to jump to each.
    const inbound = h('section', { class: 'monitor-section', id: 'monitoring-inbound' },
      h('h2', {}, t('Incoming mail')), logPanel({ mailbox: null, mailboxes }));
    const contacts = contactImportLog(null, mailboxes).el;
    contacts.classList.add('monitor-section');
    const sections = [
      [t('Incoming mail'), inbound],
      [t('Outgoing mail'), outboundSection(mailboxes)],
      [t('Subscription events'), subscriptionEventsPanel(mailboxes)],
      [t('Contact imports'), contacts],
      [t('Error notifications'), notificationsSection(mailboxes)],
      [t('Webhook receiver'), receiverSettings()],
      [t('Shared database'), sharedDatabaseSection(consoleView)],
    ];
    parts.push(h('nav', { class: 'section-nav', 'aria-label': t('Sections') },
      sections.map(([label, el]) => h('button', { type: 'button', class: 'section-link', onclick: () => el.scrollIntoView({ block: 'start', behavior: 'smooth' }) }, label))));
    parts.push(...sections.map(([, el]) => el));
    body.replaceChildren(...parts);
  })();
  return root;
}
