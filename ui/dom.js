// Tiny DOM helpers. Text always goes through textContent, never innerHTML, so data from
// mailboxes and the PSA cannot inject markup.

import { t, tx } from './i18n.js';

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces the children of `el`, skipping null/false/undefined as `h` does (the DOM's own
 *  replaceChildren would print them as the text "null"). */
export function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
  return el;
}

/** A button that copies `value` to the clipboard and says so for a moment. */
export function copyButton(value, label = t('Copy'), attrs = {}) {
  const button = h('button', { type: 'button', class: 'button small copy', 'data-copy': value, ...attrs }, label);
  button.addEventListener('click', async (e) => {
    e.stopPropagation();
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = t('Copied');
      setTimeout(() => { button.textContent = label; }, 1500);
    } catch {
      toast(t('Copy it by hand: {value}', { value }), 'error');
    }
  });
  return button;
}

export function emptyState({ id, title, body, action }) {
  return h('section', { class: 'empty-state', id },
    h('h2', {}, title),
    ...[].concat(body).map((p) => h('p', {}, p)),
    action ?? null);
}

/** A short message; an engine's message (an error) is translated when the catalogue knows it. */
export function toast(message, kind = 'info') {
  const el = document.getElementById('toast');
  el.textContent = tx(message);
  el.dataset.kind = kind;
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

/**
 * An in-app confirmation (the webview's own confirm() shows nothing on some platforms): a
 * modal overlay in the page itself. `body` is a list of lines naming what the action does.
 * Resolves to true only when the admin presses the confirm button; Escape, Cancel and a click
 * beside the dialog resolve to false.
 */
export function confirmDialog({ title, body, confirmLabel, danger = false }) {
  return new Promise((resolve) => {
    const cancel = h('button', { class: 'button', id: 'confirm-cancel', type: 'button' }, t('Cancel'));
    const ok = h('button', { class: `button ${danger ? 'danger' : 'primary'}`, id: 'confirm-ok', type: 'button' }, confirmLabel);
    const dialog = h('div', { class: 'confirm-dialog', id: 'confirm-dialog', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('ul', { class: 'confirm-body' }, [].concat(body).map((line) => h('li', {}, line))),
      h('div', { class: 'form-actions confirm-actions' }, cancel, ok));
    const overlay = h('div', { class: 'modal-backdrop', id: 'confirm-backdrop' }, dialog);
    const previous = document.activeElement;
    const onKey = (e) => {
      if (e.key === 'Escape') close(false);
      if (e.key === 'Tab') { // keep the focus inside the dialog
        e.preventDefault();
        (document.activeElement === ok ? cancel : ok).focus();
      }
    };
    function close(answer) {
      document.removeEventListener('keydown', onKey, true);
      overlay.remove();
      if (previous instanceof HTMLElement) previous.focus();
      resolve(answer);
    }
    cancel.addEventListener('click', () => close(false));
    ok.addEventListener('click', () => close(true));
    overlay.addEventListener('click', (e) => { if (e.target === overlay) close(false); });
    document.addEventListener('keydown', onKey, true);
    document.body.append(overlay);
    cancel.focus();
  });
}
