// The inbound log, per mailbox (its Inbound log tab) and for every mailbox (Monitoring): every
// email with its status and ticket, filters, keyset paging as the list scrolls, only the rows
// in view in the document, a details drawer beside the list, live updates from the engine's
// Channel, Export CSV. All text goes through textContent (dom.js `h`).

import * as backend from './backend.js';
import { emailDetails } from './email-details.js';
import { fill, h, toast } from './dom.js';
import { N_, locale, t } from './i18n.js';
import { STATUSES, countdown, fmtTime, relTime, statusCell, statusWord, ticketCell } from './log-cells.js';
import { onEngineEvents } from './live.js';
import { liveTail } from './live-tail.js';

/** The time filter's spans back from now, in hours (a negative span: older than). */
const RANGES = [
  ['', N_('Any time')],
  ['1', N_('Last hour')],
  ['24', N_('Last 24 hours')],
  ['168', N_('Last 7 days')],
  ['720', N_('Last 30 days')],
  ['-720', N_('Older than 30 days')],
];

/** `since`/`until` of a span from RANGES, from now. */
function rangeBounds(span) {
  if (!span) return { since: null, until: null };
  const hours = Number(span);
  const at = new Date(Date.now() - Math.abs(hours) * 3600 * 1000).toISOString();
  return hours > 0 ? { since: at, until: null } : { since: null, until: at };
}

/** Rows fetched per page (keyset paging; the next page loads as the list nears its end). */
const PAGE = 200;
/** Every row is one line of this height (styles.css `.log-row td`), so only the rows in view
 *  are in the document: a long log scrolls as lightly as a short one. */
const ROW = 37;
/** Rows rendered above and below the visible ones. */
const OVERSCAN = 12;

/**
 * The log list with its details drawer. `mailbox` = one mailbox (its Inbound log tab) or null
 * (Monitoring).
 */
export function logPanel({ mailbox, mailboxes }) {
  const query = { mailbox_id: mailbox ? mailbox.id : null, status: null, search: null, sender: null, ticket_id: null, since: null, until: null, limit: PAGE };
  // The time filter is a span back from now, turned into `since`/`until` at each load.
  let range = '';
  const items = [];
  const showMailbox = !mailbox;
  const mailboxName = (id) => mailboxes.find((m) => m.id === id)?.name ?? '';
  let exhausted = false;
  let loading = false;
  let loadError = null;
  let focusIndex = -1;
  let openEmail = null;
  // Every email listed or streamed, by id (the live tail names a step's email from it).
  const seen = new Map();

  const tbody = h('tbody', { id: 'log-rows' });
  // Column widths sit on the header cells (a fixed table layout reads them there), so a column
  // the open drawer leaves no room for (`.c-narrow-hide`) can be hidden with its cells.
  const table = h('table', { class: 'log-table log-table-fixed', id: 'inbound-log' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'c-time' }, t('Received')),
      showMailbox ? h('th', { scope: 'col', class: 'c-mailbox c-narrow-hide' }, t('Mailbox')) : null,
      h('th', { scope: 'col', class: 'c-from c-narrow-hide' }, t('From')), h('th', { scope: 'col', class: 'c-subject' }, t('Subject')),
      h('th', { scope: 'col', class: 'c-status' }, t('Status')), h('th', { scope: 'col', class: 'c-ticket c-narrow-hide' }, t('Ticket')))),
    tbody);
  const scroller = h('div', { class: 'log-scroll', id: 'log-scroll' }, table);
  const footer = h('div', { class: 'log-footer', id: 'log-footer', 'aria-live': 'polite' });
  const emptyText = mailbox ? t('No email processed yet. Every email this mailbox receives appears here with its status, the ticket it created or updated, and each processing attempt.')
      : (mailboxes.length === 0
        ? t('Add a mailbox first; its emails will show here as they are processed, with retries and errors.')
        : t('No email processed yet. Emails of every mailbox appear here live as they are processed.'));
  const empty = h('p', { class: 'subtle empty-log', id: mailbox ? 'empty-inbound-log' : 'empty-monitoring', hidden: true }, emptyText);
  const drawer = h('div', { class: 'log-drawer', id: 'log-details-slot' });
  const split = h('div', { class: 'log-split' }, h('div', { class: 'log-list' }, scroller, empty, footer), drawer);

  // — The counts line —
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
    paintFooter();
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

  /** "200 of 1,234 emails", what is loading, or why the next page failed. */
  function paintFooter() {
    const total = query.search || query.sender || query.ticket_id || range ? null
      : query.status ? (tally.get(query.status) ?? 0)
        : [...tally.values()].reduce((a, b) => a + b, 0);
    const shown = total === null || !exhausted || items.length < total
      ? t('{shown} of {total} emails', { shown: items.length.toLocaleString(locale()), total: total === null ? '…' : total.toLocaleString(locale()) })
      : t('{n} emails', { n: items.length.toLocaleString(locale()) });
    if (loadError) {
      footer.replaceChildren(h('span', { class: 'error-text' }, t('Could not load the inbound log: {error}', { error: loadError })),
        h('button', { class: 'button small', id: 'log-retry', onclick: () => load(items.length === 0) }, t('Try again')));
    } else {
      fill(footer, h('span', {}, items.length ? shown : ''), loading ? h('span', { class: 'subtle', id: 'log-loading' }, t('Loading…')) : null);
    }
  }

  // — Rows: only those in view (plus OVERSCAN) are in the document —
  function row(email, index) {
    const selected = openEmail && openEmail.id === email.id;
    return h('tr', { 'data-email': email.id, 'data-index': index, class: `log-row${selected ? ' selected' : ''}`, tabindex: '0',
      'aria-selected': selected ? 'true' : 'false', onclick: () => { focusIndex = index; open(email); } },
    h('td', { title: fmtTime(email.received_at), 'data-time': email.received_at }, relTime(email.received_at)),
    showMailbox ? h('td', { class: 'c-narrow-hide', title: mailboxName(email.mailbox_id) }, mailboxName(email.mailbox_id)) : null,
    h('td', { class: 'c-narrow-hide', title: `${email.from_name} <${email.from_address}>` }, email.from_name || email.from_address),
    h('td', { title: email.subject }, email.subject || t('(no subject)')),
    h('td', {}, statusCell(email)),
    h('td', { class: 'c-narrow-hide' }, ticketCell(email)));
  }
  const spacer = (height) => {
    const cell = h('td', { colspan: showMailbox ? 6 : 5 });
    cell.style.height = `${height}px`; // through the CSSOM: the CSP refuses style attributes
    return h('tr', { class: 'log-spacer', 'aria-hidden': 'true' }, cell);
  };

  let rendered = null;
  function render(force = true) {
    const view = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(scroller.scrollTop / ROW) - OVERSCAN);
    const last = Math.min(items.length, Math.ceil((scroller.scrollTop + view) / ROW) + OVERSCAN);
    const key = `${first}:${last}:${items.length}`;
    if (!force && key === rendered) return;
    rendered = key;
    const hadFocus = tbody.contains(document.activeElement);
    tbody.replaceChildren(
      ...(first > 0 ? [spacer(first * ROW)] : []),
      ...items.slice(first, last).map((e, k) => row(e, first + k)),
      ...(last < items.length ? [spacer((items.length - last) * ROW)] : []));
    empty.hidden = items.length > 0 || loading || loadError !== null;
    const filtered = Boolean(query.status || query.search || query.sender || query.ticket_id || range);
    empty.textContent = filtered ? t('No email matches these filters.') : emptyText;
    if (hadFocus) tbody.querySelector(`tr[data-index="${focusIndex}"]`)?.focus({ preventScroll: true });
    if (!exhausted && !loading && !loadError && last >= items.length - OVERSCAN && items.length > 0) load(false);
  }
  let frame = 0;
  scroller.addEventListener('scroll', () => {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; render(false); });
  });

  /** Scrolls so the row at `index` is in view, renders, and focuses it. */
  function focusRow(index) {
    if (items.length === 0) return;
    focusIndex = Math.max(0, Math.min(items.length - 1, index));
    const head = table.tHead.offsetHeight;
    const top = focusIndex * ROW;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW + head > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW + head - scroller.clientHeight;
    render(true);
    tbody.querySelector(`tr[data-index="${focusIndex}"]`)?.focus({ preventScroll: true });
  }
  // ↑/↓ (and Page Up/Down, Home/End) move between rows, Enter opens one, Esc closes it.
  tbody.addEventListener('keydown', (e) => {
    const tr = e.target.closest('tr.log-row');
    if (!tr) return;
    const index = Number(tr.dataset.index);
    const page = Math.max(1, Math.floor(scroller.clientHeight / ROW) - 1);
    const to = { ArrowDown: index + 1, ArrowUp: index - 1, PageDown: index + page, PageUp: index - page, Home: 0, End: items.length - 1 }[e.key];
    if (to !== undefined) {
      e.preventDefault();
      focusRow(to);
    } else if (e.key === 'Enter') {
      focusIndex = index;
      open(items[index]);
    }
  });
  tbody.addEventListener('focusin', (e) => {
    const tr = e.target.closest('tr.log-row');
    if (tr) focusIndex = Number(tr.dataset.index);
  });

  // — The drawer —
  const detailKey = (e) => `${e.status}:${e.attempts}:${e.ticket_id}:${e.next_attempt_at}`;
  async function open(email) {
    openEmail = email;
    split.classList.add('has-drawer');
    render(true);
    const panel = await emailDetails(email, close, filterBy);
    if (openEmail?.id === email.id) drawer.replaceChildren(panel);
  }
  function close() {
    const was = openEmail;
    openEmail = null;
    drawer.replaceChildren();
    split.classList.remove('has-drawer');
    render(true);
    if (was) {
      const index = items.findIndex((e) => e.id === was.id);
      if (index >= 0) focusRow(index);
    }
  }
  async function refreshDrawer(email) {
    if (!openEmail || openEmail.id !== email.id || detailKey(openEmail) === detailKey(email)) return;
    openEmail = email;
    const scrollTop = drawer.scrollTop;
    const panel = await emailDetails(email, close, filterBy);
    if (openEmail?.id !== email.id) return;
    drawer.replaceChildren(panel);
    drawer.scrollTop = scrollTop;
  }

  // — Loading pages —
  async function load(reset) {
    if (loading) return;
    loading = true;
    loadError = null;
    paintFooter();
    try {
      if (reset) {
        delete query.before;
        Object.assign(query, rangeBounds(range));
      } else if (items.length) {
        const last = items[items.length - 1];
        query.before = [last.received_at, last.id];
      }
      const page = await backend.inboundLog(query);
      if (reset) {
        items.length = 0;
        scroller.scrollTop = 0;
        focusIndex = -1;
      }
      // Live events may have added rows while the page was on its way: those are newer, keep
      // them and skip the page's copy, so no email is listed twice.
      const shown = new Set(items.map((e) => e.id));
      items.push(...page.items.filter((e) => !shown.has(e.id)));
      for (const e of page.items) { known.set(e.id, e.status); seen.set(e.id, e); }
      exhausted = page.items.length < PAGE;
      setCounts(page.counts);
    } catch (error) {
      loadError = error.message;
    } finally {
      loading = false;
      paintFooter();
      render(true);
    }
  }

  function matches(email) {
    if (query.mailbox_id && email.mailbox_id !== query.mailbox_id) return false;
    if (query.status && email.status !== query.status) return false;
    if (query.search) return false; // search results are reloaded, not patched live
    if (query.sender && email.from_address !== query.sender.toLowerCase()) return false;
    if (query.ticket_id && email.ticket_id !== query.ticket_id) return false;
    if (query.since && new Date(email.received_at) < new Date(query.since)) return false;
    if (query.until && new Date(email.received_at) >= new Date(query.until)) return false;
    return true;
  }
  const newestFirst = (a, b) => (a.received_at < b.received_at ? 1 : a.received_at > b.received_at ? -1 : b.id - a.id);

  onEngineEvents(split, (events) => {
    // The stream fell behind and dropped events: the rows cannot be patched, reload them.
    if (events.some((e) => e.type === 'resync')) { load(true); return; }
    let changed = false;
    // Rows added above the first one in view push the view down: scroll by as much, so what
    // the admin reads stays where it is.
    const firstInView = Math.floor(scroller.scrollTop / ROW);
    let addedAbove = 0;
    for (const event of events) {
      if (event.type !== 'email') continue;
      const email = event.email;
      seen.set(email.id, email);
      countEvent(email, event.new);
      const i = items.findIndex((e) => e.id === email.id);
      if (i >= 0) {
        if (matches(email) || !query.status) items[i] = email;
        else {
          items.splice(i, 1);
          if (i < firstInView) addedAbove -= 1;
        }
        changed = true;
      } else if (matches(email) && (exhausted || items.length === 0 || newestFirst(email, items[items.length - 1]) <= 0)) {
        let at = items.findIndex((e) => newestFirst(email, e) < 0);
        if (at < 0) at = items.length;
        items.splice(at, 0, email);
        if (at < firstInView) addedAbove += 1;
        changed = true;
      }
      refreshDrawer(email);
    }
    if (!changed) return;
    if (addedAbove && scroller.scrollTop > 0) scroller.scrollTop += addedAbove * ROW;
    render(true);
    paintFooter();
  });

  // — Toolbar —
  const statusSelect = h('select', { id: 'log-status', 'aria-label': t('Status'),
    onchange: () => applyFilters() },
  STATUSES.map(([v, label]) => h('option', { value: v }, t(label))));
  let searchTimer;
  const search = h('input', { type: 'search', id: 'log-search', placeholder: t('Search sender or subject'), 'aria-label': t('Search'),
    oninput: (e) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => applyFilters(), 250);
    } });
  // Sender, ticket and time: a second row of filters, with one button to clear them all.
  const rangeSelect = h('select', { id: 'log-range', 'aria-label': t('Received'),
    onchange: (e) => { range = e.target.value; applyFilters(); } },
  RANGES.map(([v, label]) => h('option', { value: v }, t(label))));
  const sender = h('input', { id: 'log-sender', type: 'text', placeholder: t('Sender address'), 'aria-label': t('Sender address'), autocomplete: 'off' });
  const ticket = h('input', { id: 'log-ticket', type: 'text', inputmode: 'numeric', placeholder: t('Ticket number'), 'aria-label': t('Ticket number'), autocomplete: 'off' });
  const filterError = h('span', { class: 'field-error', id: 'log-filter-error', role: 'alert', hidden: true });
  const clearFilters = h('button', { type: 'button', class: 'link-button', id: 'log-clear-filters', hidden: true }, t('Clear filters'));
  let filterTimer;
  const onFilterInput = () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(applyFilters, 300);
  };
  sender.addEventListener('input', onFilterInput);
  ticket.addEventListener('input', onFilterInput);
  function applyFilters() {
    const number = ticket.value.trim().replace(/^#/, '');
    const badTicket = number !== '' && !/^\d{1,12}$/.test(number);
    ticket.setAttribute('aria-invalid', String(badTicket));
    filterError.hidden = !badTicket;
    filterError.textContent = badTicket ? t('A ticket number is digits only, like 1042.') : '';
    if (badTicket) return;
    query.sender = sender.value.trim() || null;
    query.ticket_id = number ? Number(number) : null;
    query.status = statusSelect.value || null;
    query.search = search.value.trim() || null;
    clearFilters.hidden = !(query.sender || query.ticket_id || range || query.status || query.search);
    load(true);
  }
  clearFilters.addEventListener('click', () => {
    for (const input of [sender, ticket, search]) input.value = '';
    statusSelect.value = '';
    rangeSelect.value = '';
    range = '';
    applyFilters();
  });
  /** The drawer's "all from this sender" / "all of this ticket". */
  function filterBy({ sender: from, ticket: id }) {
    if (from !== undefined) sender.value = from;
    if (id !== undefined) ticket.value = String(id);
    applyFilters();
  }
  const filters = h('div', { class: 'log-filters' }, rangeSelect, sender, ticket, filterError, clearFilters);

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
  // *Live*: the tail of processing steps above the list; the choice is remembered.
  const tailSlot = h('div', { class: 'tail-slot' });
  const liveButton = h('button', { type: 'button', class: 'button toggle', id: 'log-live', 'aria-pressed': 'false',
    title: t('Show each processing step as it happens') }, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), t('Live'));
  const setLive = (on) => {
    liveButton.setAttribute('aria-pressed', String(on));
    localStorage.setItem('mailroom.liveTail', on ? '1' : '0');
    tailSlot.replaceChildren(on ? liveTail({
      mailboxId: query.mailbox_id,
      describe: (step) => {
        const email = seen.get(step.email_id);
        const subject = email ? (email.subject || t('(no subject)')) : `#${step.email_id}`;
        return showMailbox ? `${mailboxName(step.mailbox_id)} · ${subject}` : subject;
      },
      onOpen: (id) => { if (seen.has(id)) open(seen.get(id)); },
    }) : '');
  };
  liveButton.addEventListener('click', () => setLive(liveButton.getAttribute('aria-pressed') !== 'true'));
  const toolbar = h('div', { class: 'log-toolbar' }, statusSelect, search, liveButton, exportButton,
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

  const root = h('div', { class: 'inbound-log' }, toolbar, filters, counts, tailSlot, split);
  if (localStorage.getItem('mailroom.liveTail') === '1') setLive(true);
  // Esc closes an open email and puts the focus back on its row.
  root.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && openEmail) close();
  });
  // Countdowns tick while the panel is in the document; the rows follow the window's height.
  const ticker = setInterval(() => {
    if (!root.isConnected) { clearInterval(ticker); return; }
    for (const el of root.querySelectorAll('[data-countdown]')) {
      el.textContent = t(' (next try in {wait})', { wait: countdown(el.dataset.countdown) });
    }
  }, 1000);
  new ResizeObserver(() => render(false)).observe(scroller);
  load(true);
  return root;
}

/** The *Inbound log* tab of a mailbox. */
export function inboundLogPanel(mailbox, mailboxes = []) {
  return logPanel({ mailbox, mailboxes });
}
