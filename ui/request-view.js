// One recorded HTTP request of a processing attempt, as an admin reads it: method, status and
// time on one line with the URL wrapped beneath; headers as a table; JSON bodies as a
// collapsible tree (other bodies as text); copy buttons for the URL, each body and the whole
// exchange. Bodies and headers are stored already redacted (mailroom_trace).

import { copyButton, h } from './dom.js';
import { t } from './i18n.js';

/** Strings longer than this (base64 attachments, HTML bodies) show their start and a button. */
const LONG_STRING = 240;
/** Objects and arrays deeper than this start collapsed. */
const OPEN_DEPTH = 2;

function scalar(value) {
  if (value === null) return h('span', { class: 'json-null' }, 'null');
  if (typeof value === 'string') {
    const quoted = JSON.stringify(value);
    if (quoted.length <= LONG_STRING) return h('span', { class: 'json-string' }, quoted);
    const el = h('span', { class: 'json-string' }, `${quoted.slice(0, LONG_STRING)}…`);
    const more = h('button', { type: 'button', class: 'link-button json-more' }, t('show all {n} characters', { n: quoted.length }));
    more.addEventListener('click', () => { el.textContent = quoted; more.remove(); });
    return h('span', {}, el, ' ', more);
  }
  return h('span', { class: `json-${typeof value}` }, String(value));
}

/** A JSON value as a tree: every object and array is a <details> that folds. */
export function jsonTree(value, depth = 0, key = null) {
  const label = key === null ? null : h('span', { class: 'json-key' }, `${JSON.stringify(key)}: `);
  if (value === null || typeof value !== 'object') return h('div', { class: 'json-line' }, label, scalar(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [open, close] = Array.isArray(value) ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return h('div', { class: 'json-line' }, label, `${open}${close}`);
  const summary = Array.isArray(value) ? t('{n} items', { n: entries.length }) : t('{n} fields', { n: entries.length });
  return h('details', { class: 'json-node', open: depth < OPEN_DEPTH },
    h('summary', {}, label, open, h('span', { class: 'json-count' }, ` ${summary} `), close),
    h('div', { class: 'json-children' },
      entries.map(([k, v]) => jsonTree(v, depth + 1, Array.isArray(value) ? null : k))));
}

/** A body: a JSON tree when it parses as an object or array, its text otherwise. */
function bodyView(text) {
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = undefined; }
  if (parsed !== null && typeof parsed === 'object') return h('div', { class: 'json-view' }, jsonTree(parsed));
  return h('pre', { class: 'body-text' }, text);
}

/** Pretty JSON when the body is JSON (what a copied body should look like), as is otherwise. */
function pretty(text) {
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function headersTable(headers) {
  if (!headers || headers.length === 0) return h('p', { class: 'subtle' }, t('No headers.'));
  return h('table', { class: 'headers-table' },
    h('tbody', {}, headers.map(([name, value]) =>
      h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, value)))));
}

function section(title, copyText, content) {
  return h('div', { class: 'request-section' },
    h('div', { class: 'request-section-head' }, h('h4', {}, title),
      copyText === null ? null : copyButton(copyText, t('Copy'))),
    content);
}

/** The whole exchange as text (what to paste into a support ticket). */
function exchangeText(r) {
  const lines = (headers) => (headers || []).map(([k, v]) => `${k}: ${v}`).join('\n');
  return [
    `${r.method} ${r.url}`, lines(r.request_headers), '', r.request_body ? pretty(r.request_body) : '',
    '', `→ ${r.status ?? r.error ?? 'no response'} (${r.duration_ms} ms)`, lines(r.response_headers), '',
    r.response_body ? pretty(r.response_body) : '',
  ].join('\n').trim();
}

function statusClass(r) {
  if (r.status === null || r.status === undefined) return 'http-error';
  if (r.status >= 500 || r.status === 429) return 'http-error';
  if (r.status >= 400) return 'http-warn';
  return 'http-ok';
}

/** One request: a folding row (method, status, time, URL) that opens onto its details. */
export function requestView(r) {
  const status = r.status ?? r.error ?? t('no response');
  return h('details', { class: 'request', 'data-request-status': r.status ?? '' },
    h('summary', {},
      h('span', { class: 'request-line' },
        h('span', { class: 'http-method' }, r.method),
        h('span', { class: `http-status ${statusClass(r)}` }, String(status)),
        h('span', { class: 'request-duration' }, `${r.duration_ms} ms`)),
      h('span', { class: 'request-url' }, r.url)),
    h('div', { class: 'request-body' },
      h('div', { class: 'request-actions' }, copyButton(r.url, t('Copy URL')), copyButton(exchangeText(r), t('Copy request and response'))),
      section(t('Request headers'), null, headersTable(r.request_headers)),
      r.request_body ? section(t('Request body'), pretty(r.request_body), bodyView(r.request_body)) : null,
      section(t('Response headers'), null, headersTable(r.response_headers)),
      r.response_body ? section(t('Response body'), pretty(r.response_body), bodyView(r.response_body)) : null));
}
