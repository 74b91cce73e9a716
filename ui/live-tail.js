// The live tail: each processing step of every attempt as the engine writes it (the `step`
// events of the engine's Channel), newest at the bottom. It follows new lines while it is
// scrolled to its end and pauses when the admin scrolls up to read; *Resume* (or scrolling
// back down) follows again. Only the last MAX_LINES lines are kept.

import { h } from './dom.js';
import { locale, t } from './i18n.js';
import { onEngineEvents } from './live.js';

const MAX_LINES = 500;

/**
 * A tail pane. `mailboxId` keeps one mailbox's steps (null: every mailbox); `describe(event)`
 * names the email of a step (its subject, when the list knows it); `onOpen(emailId)` opens
 * the email a line belongs to.
 */
export function liveTail({ mailboxId, describe, onOpen }) {
  const lines = h('ol', { class: 'tail-lines', id: 'live-tail-lines' });
  const state = h('span', { class: 'tail-state', id: 'live-tail-state' });
  const resume = h('button', { type: 'button', class: 'button small', id: 'live-tail-resume', hidden: true }, t('Resume'));
  const clear = h('button', { type: 'button', class: 'button small subtle-button', id: 'live-tail-clear', onclick: () => lines.replaceChildren() }, t('Clear'));
  const box = h('div', { class: 'tail-scroll', id: 'live-tail-scroll', tabindex: '0', 'aria-label': t('Processing steps as they happen') }, lines,
    h('p', { class: 'subtle tail-empty' }, t('Waiting for the next email… each step of its processing shows here as it happens.')));
  const root = h('section', { class: 'live-tail', id: 'live-tail' },
    h('header', { class: 'tail-head' }, h('h3', {}, h('span', { class: 'live-dot', 'aria-hidden': 'true' }), t('Live')), state, resume, clear),
    box);
  let paused = false;
  let missed = 0;
  const atEnd = () => box.scrollHeight - box.scrollTop - box.clientHeight < 8;
  const paint = () => {
    root.classList.toggle('paused', paused);
    resume.hidden = !paused;
    state.textContent = paused
      ? (missed ? t('Paused while you read · {n} new', { n: missed }) : t('Paused while you read'))
      : t('Following');
  };
  const follow = () => {
    paused = false;
    missed = 0;
    box.scrollTop = box.scrollHeight;
    paint();
  };
  resume.addEventListener('click', follow);
  // Scrolling up pauses; scrolling back to the end follows again. Our own scrolls (to the
  // end, after adding lines) land at the end, so they never pause.
  box.addEventListener('scroll', () => {
    if (atEnd()) { if (paused) follow(); } else if (!paused) { paused = true; paint(); }
  });

  onEngineEvents(root, (events) => {
    const steps = events.filter((e) => e.type === 'step' && (!mailboxId || e.mailbox_id === mailboxId));
    if (steps.length === 0) return;
    for (const step of steps) {
      const time = new Date(step.at).toLocaleTimeString(locale());
      lines.append(h('li', { class: `tail-line log-${step.level}`, 'data-email': step.email_id, title: t('Open this email'),
        onclick: () => onOpen(step.email_id) },
      h('time', { datetime: step.at }, time),
      h('span', { class: 'tail-email' }, describe(step)),
      h('span', { class: 'tail-message' }, step.message)));
    }
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    if (paused) missed += steps.length; else box.scrollTop = box.scrollHeight;
    paint();
  });
  paint();
  return root;
}
