// The outbound log (per mailbox, and all mailboxes in Monitoring): the emails Mailroom sent for
// agents' replies in the PSA, with their status and ticket, each attempt's processing log and
// requests, and Resend for a failed one (crates/engine outbound). Refreshed every few seconds
// while shown. Also the outgoing default mailbox.

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { N_, locale, t, verbatim } from './i18n.js';

const STATUS_WORDS = {
  pending: N_('pending'),
  drafted: N_('drafted'),
  sent: N_('sent'),
  failed: N_('failed'),
};

const time = (iso) => (iso ? new Date(iso).toLocaleString(locale()) : '');

function attemptView(a) {
  return h('section', { class: 'attempt', 'data-attempt': a.number },
    h('h3', {}, t('Attempt {n} — {trigger} — {result}', { n: a.number, trigger: a.trigger, result: a.result ?? t('running') })),
    a.error_message ? h('p', { class: 'error-text' }, a.error_message, h('span', { class: 'error-code' }, a.error_code)) : null,
    h('h4', {}, t('Requests ({n})', { n: a.requests.length })),
    a.requests.length
      ? h('ul', { class: 'plain request-lines' }, a.requests.map((r) =>
        h('li', {}, `${r.method} ${r.url} → ${r.status ?? r.error ?? t('no response')} (${r.duration_ms} ms)`)))
      : h('p', { class: 'subtle' }, t('No requests.')),
    h('h4', {}, t('Processing log')),
    h('ol', { class: 'processing-log' }, a.log.map((l) =>
      h('li', { class: `log-${l.level}` }, `${new Date(l.at).toLocaleTimeString(locale())} ${l.message}`))));
}

async function detailsView(email, onResent) {
  const resend = email.status === 'failed'
    ? h('button', { class: 'button', id: 'outbound-resend', type: 'button' }, t('Resend'))
    : null;
  resend?.addEventListener('click', async () => {
    resend.disabled = true;
    try {
      const after = await backend.outboundResend(email.id);
      toast(after.status === 'sent' ? t('Sent.') : t('Not sent: {reason}', { reason: after.error_message ?? '' }),
        after.status === 'sent' ? 'info' : 'error');
      onResent();
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      resend.disabled = false;
    }
  });
  const panel = h('aside', { class: 'log-details', id: 'outbound-details', 'data-outbound': email.id },
    h('header', { class: 'view-header' },
      h('div', { class: 'view-title' }, h('h2', {}, email.subject), resend),
      h('dl', { class: 'facts' },
        h('dt', {}, t('To')), h('dd', {}, email.to.join(', ')),
        email.cc.length ? [h('dt', {}, t('Cc')), h('dd', {}, email.cc.join(', '))] : null,
        h('dt', {}, t('Status')), h('dd', {}, t(STATUS_WORDS[email.status] ?? email.status)),
        h('dt', {}, t('Ticket')), h('dd', {}, email.ticket_id ? String(email.ticket_id) : '—'),
        h('dt', {}, t('Sent')), h('dd', {}, time(email.sent_at) || '—'),
        email.error_message ? [h('dt', {}, t('Last error')), h('dd', {}, email.error_message)] : null,
        h('dt', {}, verbatim('Message-ID')), h('dd', {}, email.internet_message_id))));
  try {
    const attempts = await backend.outboundAttempts(email.id);
    panel.append(h('div', { class: 'attempts' },
      attempts.length ? attempts.slice().reverse().map(attemptView) : h('p', { class: 'subtle' }, t('Not sent yet.'))));
  } catch (error) {
    panel.append(h('p', { class: 'error-text' }, error.message));
  }
  return panel;
}

/** The outbound log of `mailbox` (or of every mailbox when null). */
export function outboundLogPanel(mailbox, mailboxes = []) {
  const tbody = h('tbody', { id: 'outbound-rows' });
  const empty = h('p', { class: 'subtle', id: 'outbound-empty', hidden: true },
    t('No email sent yet. When an agent emails the customer from a ticket in HaloPSA, Mailroom sends it from the mailbox the ticket came in through, and it shows here.'));
  const details = h('div', {});
  let open = null;
  let openStatus = null;
  const showMailbox = !mailbox;
  const load = async () => {
    try {
      const list = await backend.outboundList(mailbox ? mailbox.id : null);
      empty.hidden = list.length > 0;
      fill(tbody, list.map((e) => {
        const row = h('tr', { class: 'log-row', 'data-outbound': e.id, 'data-status': e.status, tabindex: '0' },
          h('td', {}, time(e.created_at)),
          showMailbox ? h('td', {}, mailboxes.find((m) => m.id === e.mailbox_id)?.name ?? '') : null,
          h('td', {}, e.to.join(', ')),
          h('td', {}, e.subject),
          h('td', {}, h('span', { class: `status status-${e.status === 'sent' ? 'processed' : e.status}` }, t(STATUS_WORDS[e.status] ?? e.status))),
          h('td', {}, e.ticket_id ? t('Ticket {id}', { id: e.ticket_id }) : ''));
        const show = async () => {
          open = e.id;
          openStatus = e.status;
          fill(details, await detailsView(e, load));
        };
        row.addEventListener('click', show);
        row.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') show(); });
        return row;
      }));
      // An open email whose status changed (sent, retried) is shown again.
      const current = list.find((e) => e.id === open);
      if (current && current.status !== openStatus) {
        openStatus = current.status;
        fill(details, await detailsView(current, load));
      }
    } catch (error) {
      empty.hidden = false;
      empty.textContent = t('Could not load the outbound log: {error}', { error: error.message });
    }
  };
  const table = h('table', { class: 'log-table', id: 'outbound-log' },
    h('thead', {}, h('tr', {},
      h('th', {}, t('Created')), showMailbox ? h('th', {}, t('Mailbox')) : null,
      h('th', {}, t('To')), h('th', {}, t('Subject')), h('th', {}, t('Status')), h('th', {}, t('Ticket')))),
    tbody);
  const root = h('div', { class: 'outbound-log' }, table, empty, details);
  load();
  const timer = setInterval(() => {
    if (!root.isConnected) { clearInterval(timer); return; }
    load();
  }, 5000);
  return root;
}

/** The mailbox agents' replies go out from for tickets that did not start as email. */
export function outgoingDefault(mailboxes) {
  const select = h('select', { id: 'outbound-default' },
    h('option', { value: '' }, t('None: such replies are not sent')),
    mailboxes.map((m) => h('option', { value: m.id }, m.name)));
  (async () => {
    try {
      select.value = (await backend.outboundDefaultGet()) ?? '';
    } catch (error) {
      toast(error.message, 'error');
    }
  })();
  select.addEventListener('change', async () => {
    try {
      await backend.outboundDefaultSet(select.value || null);
      toast(t('Outgoing default mailbox saved.'));
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  return h('label', { class: 'field outbound-default' },
    h('span', {}, t('Outgoing default mailbox')), select,
    h('small', { class: 'subtle' }, t('Agents\' replies to tickets that did not start as email go out from this mailbox. Replies to tickets from email go out from the mailbox the ticket came in through.')));
}

/** Monitoring's section: the outgoing default and every mailbox's outbound log. */
export function outboundSection(mailboxes) {
  return h('section', { class: 'outbound-section', id: 'monitoring-outbound' },
    h('h2', {}, t('Outgoing mail')),
    outgoingDefault(mailboxes),
    outboundLogPanel(null, mailboxes));
}
