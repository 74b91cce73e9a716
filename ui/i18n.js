// The interface language: every text the UI shows goes through `t`, which looks it up in the
// chosen language's catalogue (ui/locales/) and fills `{name}` placeholders. The English text
// is the key, so English needs no catalogue. HaloPSA's and Microsoft's own menu paths, field
// names and values are not translated: they must match what the admin sees in those products.
//
// Texts kept in module-level tables are marked with `N_` (which returns them unchanged) and
// translated where they are shown, so a language switch re-renders them in the new language.
// tests/ui_catalogue.rs checks that every `t`/`N_` text has a German entry.

import de from './locales/de.js';

const CATALOGUES = { de };

/** The languages the interface offers (id, the language's own name). */
export const LANGUAGES = [
  { id: 'en', name: 'English' },
  { id: 'de', name: 'Deutsch' },
];

let current = 'en';

/** `text` in the current language, with `{name}` placeholders filled from `params`. */
export function t(text, params = {}) {
  const translated = CATALOGUES[current]?.[text] ?? text;
  return translated.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Marks a text for the catalogue without translating it yet (translate it where shown). */
export const N_ = (text) => text;

/** Marks a text that is shown as it is in every language: HaloPSA's and Microsoft's own menu
 *  paths, field names and values, which must match what the admin sees in those products. */
export const verbatim = (text) => text;

/** The wizard's step titles (they come from the engine, in English). */
export const STEP_TITLES = [
  N_('Connection'),
  N_('Agent, API application and permissions'),
  N_('Scope: ticket types'),
  N_('Ticket tab'),
  N_('Resolve action'),
  N_('Webhook certificate'),
  N_('PSA webhook'),
  N_('End-to-end test'),
];

/** The current language's id. */
export function language() {
  return current;
}

/** The locale for dates and numbers in the current language. */
export function locale() {
  return current === 'de' ? 'de-DE' : undefined;
}

/** Switches the language and tells the views to render again (`mailroom:language`). */
export function setLanguage(id) {
  current = LANGUAGES.some((l) => l.id === id) ? id : 'en';
  document.documentElement.lang = current;
  translateStatic();
  window.dispatchEvent(new CustomEvent('mailroom:language', { detail: current }));
}

/** The static page (index.html) marks its texts with `data-i18n` (and `data-i18n-title`). */
function translateStatic() {
  for (const el of document.querySelectorAll('[data-i18n]')) {
    el.dataset.i18n ||= el.textContent;
    el.textContent = t(el.dataset.i18n);
  }
  for (const el of document.querySelectorAll('[data-i18n-title]')) {
    el.title = t(el.dataset.i18nTitle);
    el.setAttribute('aria-label', el.title);
  }
}
