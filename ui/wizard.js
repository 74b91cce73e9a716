// The wizard's building blocks, shared by the Integration area's step cards: a card with its
// state pill, instructions and check results; copyable values; *Create it for me* buttons.

import { fill, h, toast } from './dom.js';

/** A value the admin types into the PSA, with a copy button. */
export function copyable(value, id) {
  const button = h('button', { type: 'button', class: 'button small copy', 'data-copy': value, title: `Copy "${value}"` }, 'Copy');
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = 'Copied';
      setTimeout(() => { button.textContent = 'Copy'; }, 1500);
    } catch {
      toast(`Copy it by hand: ${value}`, 'error');
    }
  });
  return h('span', { class: 'copyable', id }, h('code', {}, value), button);
}

/** *Create it for me*: a button that runs `action` (resolving to the step's new result),
 *  paints it on `card()`'s card, and says `done` when it went through. */
export function createForMe(id, note, action, card, done = null) {
  const button = h('button', { type: 'button', class: 'button', id }, 'Create it for me');
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      card().paint(await action());
      if (done) toast(done);
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      button.disabled = false;
    }
  });
  return h('div', { class: 'create-for-me' }, button, h('small', { class: 'subtle' }, note));
}

/** A PSA field and the value to give it. */
export function setting(name, value) {
  return h('li', {}, h('span', { class: 'setting-name' }, `${name}: `), value);
}

function stateOf(result) {
  if (!result) return 'unchecked';
  return result.ok ? 'ok' : 'failed';
}

const PILL = { unchecked: 'Not checked', ok: 'Done', failed: 'Needs attention' };

function checkList(result) {
  if (!result) return h('ul', { class: 'checks' });
  return h('ul', { class: 'checks' }, result.items.map((c) =>
    h('li', { class: `check ${c.ok ? 'check-ok' : (c.optional ? 'check-optional' : 'check-failed')}`, 'data-check': c.id, 'data-ok': String(c.ok) },
      h('span', { class: 'check-mark', 'aria-hidden': 'true' }, c.ok ? '✓' : (c.optional ? '–' : '✕')),
      h('div', {},
        h('strong', {}, c.label), c.optional ? h('span', { class: 'subtle' }, ' (optional)') : null, ' — ', c.detail,
        c.why ? h('div', { class: 'check-why' }, c.why) : null,
        c.fix && !c.ok ? h('div', { class: 'check-fix' }, `Fix: ${c.fix}`) : null))));
}

/** One step's card: number, title, state, what to do, its check. */
export function stepCard(number, step, { intro, body, bodyLabel, onCheck, checkLabel = 'Check' }) {
  const state = stateOf(step.result);
  const pill = h('span', { class: `pill pill-${state}`, 'data-state': state }, PILL[state]);
  const results = h('div', { class: 'step-results' });
  const summary = h('p', { class: 'step-summary' });
  const card = h('section', { class: 'step-card', id: `step-${step.step}`, 'data-state': state });
  const paint = (result) => {
    const s = stateOf(result);
    card.dataset.state = s;
    card.dataset.checkedAt = result?.checked_at ?? '';
    pill.dataset.state = s;
    pill.className = `pill pill-${s}`;
    pill.textContent = PILL[s];
    summary.textContent = result
      ? `${result.summary} · checked ${new Date(result.checked_at).toLocaleString()}`
      : '';
    fill(results, checkList(result));
  };
  const button = h('button', { type: 'button', class: 'button', id: `check-${step.step}` }, checkLabel);
  button.addEventListener('click', async () => {
    button.disabled = true;
    summary.textContent = 'Checking…';
    try {
      paint(await onCheck());
    } catch (error) {
      summary.textContent = error.message;
      card.dataset.state = 'failed';
    } finally {
      button.disabled = false;
    }
  });
  paint(step.result);
  fill(card,
    h('header', { class: 'step-head' },
      h('span', { class: 'step-number', 'aria-hidden': 'true' }, String(number)),
      h('div', { class: 'step-title' }, h('h2', {}, step.title), intro ? h('p', { class: 'subtle' }, intro) : null),
      pill),
    // A done step keeps its instructions folded away.
    h('details', { class: 'step-body', open: state !== 'ok' }, h('summary', {}, bodyLabel), body),
    h('div', { class: 'step-actions' }, onCheck ? button : null),
    summary,
    results);
  return { card, paint };
}
