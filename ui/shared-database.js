// Monitoring > Shared database: point this workstation at the PostgreSQL database the Mailroom
// service's workers share (its mailboxes, logs and live events show here; what is configured
// here applies to every worker), and whether this workstation processes mail too. Saved for
// the next start; the password and the secrets key go to the keyring, never to a file.

import * as backend from './backend.js';
import { h, toast } from './dom.js';
import { t } from './i18n.js';
import { fmtTime, relTime } from './log-cells.js';

function choice(name, value, label, description) {
  return h('label', { class: 'choice' },
    h('input', { type: 'radio', name, value, id: `${name}-${value}` }),
    h('span', {}, h('strong', {}, label), h('span', { class: 'field-hint' }, description)));
}

/** What this run opened, in one line (and why a saved shared database was not opened). */
function currentLine(view) {
  const lines = [];
  if (view.active_url) {
    lines.push(h('p', { class: 'subtle', id: 'database-now', 'data-database': 'shared' },
      view.processing
        ? t('Now: the shared database {url}; this workstation processes mail too.', { url: view.active_url })
        : t('Now: the shared database {url}; this workstation only watches — the Mailroom service processes the mail.', { url: view.active_url })));
  } else {
    lines.push(h('p', { class: 'subtle', id: 'database-now', 'data-database': 'own' },
      t('Now: this workstation\'s own database.')));
  }
  if (view.shared_error) {
    lines.push(h('p', { class: 'callout error', id: 'database-error', role: 'alert' },
      t('The shared database could not be opened at start: {reason}. This workstation\'s own database is open and processes no mail until the setting below is fixed.', { reason: view.shared_error })));
  }
  if (view.restart_needed) {
    lines.push(h('p', { class: 'callout warning', id: 'database-restart' },
      t('Saved. Quit Mailroom (tray menu > Quit) and open it again to use this setting.')));
  }
  return lines;
}

/** The *Shared database* section; `viewed` is the pending `consoleGet()` (shared with the
 * processes card, so Monitoring reads the setting and the keyring once). */
export function sharedDatabaseSection(viewed) {
  const status = h('div', { id: 'database-status' });
  const own = choice('database', 'own', t('This workstation\'s own database'),
    t('Mailroom keeps everything on this computer and processes mail while it runs.'));
  const shared = choice('database', 'shared', t('A shared PostgreSQL database'),
    t('The database the Mailroom service uses: its mailboxes, logs and live events show here, and what you set up here applies to every worker.'));
  const url = h('input', { id: 'database-url', placeholder: 'postgres://mailroom@db.example.com:5432/mailroom', autocomplete: 'off', spellcheck: 'false' });
  const password = h('input', { id: 'database-password', type: 'password', autocomplete: 'new-password' });
  const key = h('input', { id: 'database-key', type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const processing = h('input', { type: 'checkbox', id: 'database-processing' });
  const fields = h('div', { class: 'database-fields', id: 'database-fields' },
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Database URL')),
      url, h('span', { class: 'field-hint' }, t('Without the password; add ?sslmode=require for a server on another machine.'))),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Password')), password),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Secrets key')),
      key, h('span', { class: 'field-hint' }, t('The key the service seals its secrets with: the contents of the file its MAILROOM_SECRETS_KEY_FILE names. Kept in this computer\'s keyring.'))),
    h('label', { class: 'choice' }, processing,
      h('span', {}, h('strong', {}, t('Process mail on this workstation too')),
        h('span', { class: 'field-hint' }, t('Off: the service processes everything and this window only shows it. On: this workstation shares the work while it runs.')))));
  const result = h('div', { id: 'database-result', 'aria-live': 'polite' });
  const test = h('button', { type: 'button', class: 'button', id: 'database-test' }, t('Test connection'));
  const save = h('button', { type: 'submit', class: 'button primary', id: 'database-save' }, t('Save'));
  const form = h('form', { class: 'form database-form', id: 'database-form' },
    h('fieldset', { class: 'choices' }, h('legend', {}, t('Database')), own, shared),
    fields, result, h('div', { class: 'form-actions' }, test, save));
  const root = h('section', { class: 'monitor-section', id: 'shared-database' },
    h('h2', {}, t('Shared database')),
    h('p', { class: 'subtle' }, t('Run Mailroom as an always-on service on a server and use this window as its console. The change applies at the next start.')),
    status, form);

  const isShared = () => form.database.value === 'shared';
  const showFields = () => { fields.hidden = !isShared(); test.hidden = !isShared(); };
  const change = () => ({
    database_url: isShared() ? url.value.trim() : null,
    password: password.value || null,
    secrets_key: key.value.trim() || null,
    process_mail: isShared() ? processing.checked : true,
  });
  const showError = (error) => {
    result.replaceChildren(h('p', { class: 'form-error', id: 'database-failed', role: 'alert', 'data-code': error.code }, error.message));
  };
  const paint = (view) => {
    status.replaceChildren(...currentLine(view));
    const saved = view.saved;
    (saved.database_url ? shared : own).querySelector('input').checked = true;
    url.value = saved.database_url ?? '';
    password.value = '';
    password.placeholder = saved.has_password ? t('Saved in the keyring — leave empty to keep it') : '';
    key.value = '';
    key.placeholder = saved.has_key ? t('Saved in the keyring — leave empty to keep it') : t('Base64, 44 characters');
    processing.checked = saved.database_url ? saved.process_mail : false;
    showFields();
    if (view.sandbox) {
      for (const el of form.querySelectorAll('input, button')) el.disabled = true;
      result.replaceChildren(h('p', { class: 'subtle' }, t('The sandbox tenant always runs on its own database.')));
    }
  };
  form.addEventListener('change', (event) => { if (event.target.name === 'database') showFields(); });
  test.addEventListener('click', async () => {
    test.disabled = true;
    result.replaceChildren(h('p', { class: 'subtle' }, t('Connecting…')));
    try {
      const found = await backend.consoleTest(change());
      result.replaceChildren(h('p', { class: 'callout', id: 'database-checked' },
        t('Connected: {mailboxes} mailbox(es); the key (id {key}) opens all {secrets} secret(s) sealed in the database.',
          { mailboxes: found.mailboxes, key: found.key_id, secrets: found.secrets })));
    } catch (error) {
      showError(error);
    } finally {
      test.disabled = false;
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    save.disabled = true;
    result.replaceChildren(isShared() ? h('p', { class: 'subtle' }, t('Connecting…')) : '');
    try {
      const view = await backend.consoleSet(change());
      paint(view);
      result.replaceChildren();
      toast(t('Database setting saved; it applies at the next start.'));
    } catch (error) {
      showError(error);
    } finally {
      save.disabled = false;
    }
  });
  viewed.then(paint).catch((error) => showError(error));
  return root;
}

/**
 * The Mailroom processes on a shared database (service workers, desktop apps), polled while
 * shown; a warning when none processes mail. Shown only when this workstation opened a shared
 * database (`viewed`: the pending `consoleGet()`).
 */
export function processesCard(viewed) {
  const warning = h('p', { class: 'callout warning', id: 'no-worker', role: 'alert', hidden: true });
  const tbody = h('tbody', { id: 'process-rows' });
  const root = h('section', { class: 'processes-card', id: 'processes', hidden: true },
    h('h2', {}, t('Mailroom processes on this database')),
    warning,
    h('table', { class: 'log-table' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('Host')), h('th', {}, t('Role')), h('th', {}, t('Mail')), h('th', {}, t('Version')),
        h('th', {}, t('Started')), h('th', {}, t('Last seen')))),
      tbody));
  const roles = { service: t('service'), desktop: t('desktop app') };
  const refresh = async () => {
    let found;
    try {
      found = await backend.consoleProcesses();
    } catch (error) {
      warning.textContent = t('Could not load the processes: {error}', { error: error.message });
      warning.hidden = false;
      return;
    }
    tbody.replaceChildren(...found.processes.map((p) => h('tr', { 'data-process': p.id, 'data-alive': String(p.alive), class: p.alive ? '' : 'process-silent' },
      h('td', {}, p.id === found.this_id ? t('{host} (this window)', { host: p.host }) : p.host, h('span', { class: 'subtle' }, ' · ', t('pid {pid}', { pid: p.pid }))),
      h('td', {}, roles[p.role] ?? p.role),
      h('td', {}, p.processing ? t('processes') : t('watches')),
      h('td', {}, p.version),
      h('td', {}, fmtTime(p.started_at)),
      h('td', {}, p.alive ? relTime(p.seen_at) : t('silent since {time}', { time: fmtTime(p.seen_at) })))));
    if (found.processing_alive === 0) {
      warning.textContent = found.processing_last_seen
        ? t('No Mailroom process is processing mail: the last one was seen {time}. Start the service on the server (systemctl start mailroom), or turn on processing on this workstation below.', { time: fmtTime(found.processing_last_seen) })
        : t('No Mailroom process is processing mail on this database. Start the service on the server (systemctl start mailroom), or turn on processing on this workstation below.');
      warning.hidden = false;
    } else {
      warning.hidden = true;
    }
  };
  viewed.then((view) => {
    if (!view.active_url) return;
    root.hidden = false;
    refresh();
    const timer = setInterval(() => {
      if (!root.isConnected) { clearInterval(timer); return; }
      refresh();
    }, 5000);
  }).catch(() => {});
  return root;
}
