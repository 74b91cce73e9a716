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

/** Catalogue keys with `{name}` placeholders as patterns, per language (built on first use). */
const PATTERNS = {};

function patterns() {
  if (!PATTERNS[current]) {
    const escape = (s) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
    PATTERNS[current] = Object.entries(CATALOGUES[current] ?? {})
      .filter(([key]) => /\{\w+\}/.test(key))
      .map(([key, value]) => {
        const names = [...key.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
        const source = key.split(/\{\w+\}/).map((part) => escape(part)).join('(.+?)');
        return { re: new RegExp(`^${source}$`, 's'), names, value };
      });
  }
  return PATTERNS[current];
}

/** A text the engine wrote (check results, in English) in the current language: the
 *  catalogue's entry for it, else the first entry whose pattern (`{name}` = any text) it
 *  matches, filled with what the placeholders matched; else the text as it is. */
export function tx(text) {
  if (!text || current === 'en') return text;
  const exact = CATALOGUES[current]?.[text];
  if (exact !== undefined) return exact;
  for (const { re, names, value } of patterns()) {
    const m = re.exec(text);
    if (m) return value.replace(/\{(\w+)\}/g, (whole, name) => (names.includes(name) ? m[names.indexOf(name) + 1] : whole));
  }
  return text;
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
