// The wizard's building blocks, shared by the Integration area's step cards: a card with its
// state pill, instructions and check results; copyable values; *Create it for me* buttons.

import { copyButton, fill, h, toast } from './dom.js';
import { N_, locale, t, tx } from './i18n.js';

/** A value the admin types into the PSA, with a copy button. */
export function copyable(value, id) {
  return h('span', { class: 'copyable', id }, h('code', {}, value),
    copyButton(value, t('Copy'), { title: t('Copy "{value}"', { value }) }));
}

/** *Create it for me*: a button that runs `action` (resolving to the step's new result),
 *  paints it on `card()`'s card, and says `done` when it went through. */
export function createForMe(id, note, action, card, done = null) {
  const button = h('button', { type: 'button', class: 'button', id }, t('Create it for me'));
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

/** A result's one line: what is done, or the first thing to fix (in the current language). */
function summaryOf(result) {
  const first = result.items.find((i) => !i.ok && !i.optional);
  return first ? `${tx(first.label)}: ${tx(first.detail)}` : tx(result.summary);
}

function stateOf(result) {
  if (!result) return 'unchecked';
  return result.ok ? 'ok' : 'failed';
}

const PILL = { unchecked: N_('Not checked'), ok: N_('Done'), failed: N_('Needs attention') };

function checkList(result) {
  if (!result) return h('ul', { class: 'checks' });
  return h('ul', { class: 'checks' }, result.items.map((c) =>
    h('li', { class: `check ${c.ok ? 'check-ok' : (c.optional ? 'check-optional' : 'check-failed')}`, 'data-check': c.id, 'data-ok': String(c.ok) },
      h('span', { class: 'check-mark', 'aria-hidden': 'true' }, c.ok ? '✓' : (c.optional ? '–' : '✕')),
      h('div', {},
        h('strong', {}, tx(c.label)), c.optional ? h('span', { class: 'subtle' }, t(' (optional)')) : null, ' — ', tx(c.detail),
        c.why ? h('div', { class: 'check-why' }, tx(c.why)) : null,
        c.fix && !c.ok ? h('div', { class: 'check-fix' }, t('Fix: {fix}', { fix: tx(c.fix) })) : null))));
}

/** One step's card: number, title, state, what to do, its check. */
export function stepCard(number, step, { intro, body, bodyLabel, onCheck, checkLabel = null }) {
  const state = stateOf(step.result);
  const pill = h('span', { class: `pill pill-${state}`, 'data-state': state }, t(PILL[state]));
  const results = h('div', { class: 'step-results' });
  const summary = h('p', { class: 'step-summary' });
  const card = h('section', { class: 'step-card', id: `step-${step.step}`, 'data-state': state });
  const paint = (result) => {
    const s = stateOf(result);
    card.dataset.state = s;
    card.dataset.checkedAt = result?.checked_at ?? '';
    pill.dataset.state = s;
    pill.className = `pill pill-${s}`;
    pill.textContent = t(PILL[s]);
    summary.textContent = result
      ? t('{summary} · checked {time}', { summary: summaryOf(result), time: new Date(result.checked_at).toLocaleString(locale()) })
      : '';
    fill(results, checkList(result));
  };
  const button = h('button', { type: 'button', class: 'button', id: `check-${step.step}` }, checkLabel ?? t('Check'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    summary.textContent = t('Checking…');
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
      h('div', { class: 'step-title' }, h('h2', {}, t(step.title)), intro ? h('p', { class: 'subtle' }, intro) : null),
      pill),
    // A done step keeps its instructions folded away.
    h('details', { class: 'step-body', open: state !== 'ok' }, h('summary', {}, bodyLabel), body),
    h('div', { class: 'step-actions' }, onCheck ? button : null),
    summary,
    results);
  return { card, paint };
}
