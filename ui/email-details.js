// An email's details, shown in the drawer beside the inbound log: its facts, Reprocess, and
// every attempt (newest first) with its requests and processing log.

import * as backend from './backend.js';
import { h, toast } from './dom.js';
import { locale, t, verbatim } from './i18n.js';
import { fmtTime, statusCell, ticketCell } from './log-cells.js';
import { requestView } from './request-view.js';

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

/** The drawer's content for `email`; `close` closes the drawer; `filterBy({sender})` or
 *  `filterBy({ticket})` filters the list to the mail of this sender or ticket. */
export async function emailDetails(email, close, filterBy) {
  const narrow = (label, id, filter) => h('button', { type: 'button', class: 'link-button narrow', id, onclick: () => filterBy(filter) }, label);
  const panel = h('aside', { class: 'log-details', id: 'log-details', 'data-email': email.id, 'aria-label': t('Email details') });
  const reprocess = h('button', { class: 'button', id: 'reprocess', onclick: async () => {
    try {
      await backend.inboundReprocess(email.id);
      toast(t('Queued for processing again.'));
    } catch (error) {
      toast(error.message, 'error');
    }
  } }, t('Reprocess'));
  const header = h('header', { class: 'drawer-header' },
    h('div', { class: 'drawer-title' },
      h('h2', {}, email.subject || t('(no subject)')),
      h('div', { class: 'drawer-actions' }, reprocess,
        h('button', { class: 'button subtle-button', id: 'log-details-close', title: t('Close (Esc)'), onclick: close }, t('Close')))),
    h('dl', { class: 'facts' },
      h('dt', {}, t('From')), h('dd', {}, `${email.from_name} <${email.from_address}>`, ' ',
        narrow(t('All from this sender'), 'filter-sender', { sender: email.from_address })),
      h('dt', {}, t('Received')), h('dd', {}, fmtTime(email.received_at)),
      h('dt', {}, t('Status')), h('dd', {}, statusCell(email)),
      h('dt', {}, t('Ticket')), h('dd', {}, ticketCell(email), email.ticket_id ? ' ' : null,
        email.ticket_id ? narrow(t('All mail of this ticket'), 'filter-ticket', { ticket: email.ticket_id }) : null),
      email.skip_detail ? [h('dt', {}, t('Why skipped')), h('dd', {}, email.skip_detail)] : null,
      email.error_message ? [h('dt', {}, t('Last error')), h('dd', {}, email.error_message, h('span', { class: 'error-code' }, email.error_code))] : null,
      h('dt', {}, verbatim('Message-ID')), h('dd', {}, email.internet_message_id ?? '')));
  panel.append(header);
  try {
    const attempts = await backend.inboundAttempts(email.id);
    panel.append(h('div', { class: 'attempts' },
      attempts.length ? attempts.slice().reverse().map(attemptView)
        : h('p', { class: 'subtle', id: 'attempts-none' }, email.attempts > 0
          // Its attempts were older than the retention allows (the dashboard's storage card).
          ? t('The details of its {n} attempt(s) were removed by retention (the Overview\'s Storage card says how long they are kept).', { n: email.attempts })
          : t('Not processed yet.'))));
  } catch (error) {
    panel.append(h('p', { class: 'error-text' }, error.message));
  }
  return panel;
}
