// What the inbound log and an email's details show of an email: times, status badge, ticket.

import { h } from './dom.js';
import { N_, locale, t } from './i18n.js';

/** The status filter's choices. */
export const STATUSES = [
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
export const statusWord = (status) => (STATUS_WORDS[status] ? t(STATUS_WORDS[status]) : status);

export function fmtTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(locale());
}

export function countdown(iso) {
  const secs = Math.max(0, Math.round((new Date(iso) - Date.now()) / 1000));
  if (secs >= 3600) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  if (secs >= 60) return `${Math.floor(secs / 60)} min ${secs % 60} s`;
  return `${secs} s`;
}

/** "5 min ago", "3 h ago", "2 days ago"; the absolute time is the cell's tooltip. */
export function relTime(iso) {
  const minutes = Math.round((Date.now() - new Date(iso)) / 60000);
  if (minutes < 1) return t('just now');
  if (minutes < 60) return t('{n} min ago', { n: minutes });
  if (minutes < 48 * 60) return t('{n} h ago', { n: Math.round(minutes / 60) });
  return t('{n} days ago', { n: Math.round(minutes / 1440) });
}

const STATUS_ICONS = { processed: '✓', skipped: '⤼', failed: '✕', retrying: '↻', pending: '…' };

export function statusCell(email) {
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

export function ticketCell(email) {
  if (!email.ticket_id) return email.skip_reason ? h('span', { class: 'subtle' }, email.skip_reason) : '';
  const what = email.outcome === 'action_added' ? t('Ticket {id} (update)', { id: email.ticket_id }) : t('Ticket {id}', { id: email.ticket_id });
  return h('span', { 'data-ticket': email.ticket_id }, what);
}
