// The mailbox's Contact imports tab: Outlook contacts into HaloPSA users (crates/engine
// contacts). Field mappings (Add / Remove / Save), the default site for new users and the other
// import settings, the mailbox's schedule, a preview of what an import would do, the import
// itself with a progress bar (n of N, rate, time left, Cancel), and the import log with each
// contact's outcome. Monitoring shows the import log of every mailbox (`contactImportLog`).

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { N_, locale, t, verbatim } from './i18n.js';
import { onEngineEvents } from './live.js';

const OUTCOMES = {
  create: N_('create'),
  update: N_('update'),
  unchanged: N_('unchanged'),
  skip: N_('skip'),
  created: N_('created'),
  updated: N_('updated'),
  skipped: N_('skipped'),
  failed: N_('failed'),
  removed: N_('removed'),
};
const STATES = {
  running: N_('running'),
  finished: N_('finished'),
  cancelled: N_('cancelled'),
  failed: N_('failed'),
  interrupted: N_('interrupted'),
};
const TRIGGERS = { manual: N_('manual'), scheduled: N_('scheduled') };
const INTERVALS = [
  [15, N_('every 15 minutes')],
  [60, N_('every hour')],
  [240, N_('every 4 hours')],
  [720, N_('every 12 hours')],
  [1440, N_('every day')],
];
// Outcome → the status colour of the log's chips and pills.
const TONE = {
  create: 'processed', created: 'processed', update: 'pending', updated: 'pending',
  unchanged: 'skipped', skip: 'retrying', skipped: 'retrying', failed: 'failed', removed: 'skipped',
};

const word = (table, key) => (table[key] ? t(table[key]) : key);
const time = (iso) => (iso ? new Date(iso).toLocaleString(locale()) : '');
const pill = (outcome) => h('span', { class: `status status-${TONE[outcome] ?? 'skipped'}`, 'data-outcome': outcome }, word(OUTCOMES, outcome));

function permissionNote(mailbox) {
  const shared = Boolean(mailbox.shared_mailbox);
  const text = mailbox.method === 'webhook'
    ? t('Reading contacts needs the application permission {perm} on the app registration, with admin consent.', { perm: verbatim('Contacts.Read') })
    : shared
      ? t('Reading a shared mailbox\'s contacts needs the delegated permission {perm} and the signed-in user\'s access to the mailbox.', { perm: verbatim('Contacts.Read.Shared') })
      : t('Reading contacts needs the delegated permission {perm}; sign in again after adding it.', { perm: verbatim('Contacts.Read') });
  return h('p', { class: 'callout', id: 'contacts-permission' }, text, ' ',
    t('Test connection on the Incoming tab checks it.'));
}

/** The mappings table with Add / Remove, and the import settings; Save stores both. */
function settingsForm(setup, onSaved) {
  const rows = h('tbody', { id: 'mapping-rows' });
  const option = (value, label, selected) => h('option', { value, selected: value === selected }, label);
  const addRow = (m = { outlook: '', psa: '' }) => {
    const outlook = h('select', { class: 'mapping-outlook', 'aria-label': t('Outlook field') },
      option('', t('Choose…'), m.outlook),
      setup.outlook_fields.map((f) => option(f.key, verbatim(f.label), m.outlook)));
    const psa = h('select', { class: 'mapping-psa', 'aria-label': t('HaloPSA user field') },
      option('', t('Choose…'), m.psa),
      setup.psa_fields.map((f) => option(f.key, verbatim(f.label), m.psa)));
    const remove = h('button', { class: 'button small mapping-remove', type: 'button' }, t('Remove'));
    const tr = h('tr', { class: 'mapping-row' }, h('td', {}, outlook), h('td', { class: 'arrow' }, '→'), h('td', {}, psa), h('td', {}, remove));
    remove.addEventListener('click', () => tr.remove());
    rows.append(tr);
  };
  for (const m of setup.settings.mappings) addRow(m);

  const site = h('select', { id: 'contacts-default-site' },
    h('option', { value: '' }, t('None — skip contacts of other domains')),
    setup.sites.map((s) => h('option', { value: String(s.id), selected: s.id === setup.settings.default_site_id },
      s.emaildomain ? `${s.name} (${s.emaildomain})` : s.name)));
  const update = h('input', { type: 'checkbox', id: 'contacts-update-existing', checked: setup.settings.update_existing });
  const excluded = h('input', { type: 'text', id: 'contacts-excluded', value: setup.settings.excluded_domains.join(', '), placeholder: 'gmail.com, outlook.com' });
  const error = h('p', { class: 'form-error', id: 'contacts-settings-error', hidden: true });
  const save = h('button', { class: 'button primary', type: 'button', id: 'contacts-save' }, t('Save'));
  save.addEventListener('click', async () => {
    const mappings = [...rows.querySelectorAll('.mapping-row')].map((tr) => ({
      outlook: tr.querySelector('.mapping-outlook').value,
      psa: tr.querySelector('.mapping-psa').value,
    })).filter((m) => m.outlook || m.psa);
    const incomplete = mappings.find((m) => !m.outlook || !m.psa);
    if (incomplete) {
      error.textContent = t('Choose both fields of every mapping, or remove it.');
      error.hidden = false;
      return;
    }
    save.disabled = true;
    try {
      const saved = await backend.contactsSettingsSet({
        mappings,
        default_site_id: site.value ? Number(site.value) : null,
        update_existing: update.checked,
        excluded_domains: excluded.value.split(/[,;\s]+/).filter(Boolean),
      });
      error.hidden = true;
      toast(t('Contact import settings saved.'));
      onSaved(saved);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    } finally {
      save.disabled = false;
    }
  });
  const add = h('button', { class: 'button', type: 'button', id: 'mapping-add' }, t('Add'));
  add.addEventListener('click', () => addRow());

  return h('section', { class: 'contacts-settings' },
    h('h2', {}, t('Field mappings')),
    h('p', { class: 'subtle' }, t('Which Outlook contact field fills which HaloPSA user field. Shared by every mailbox. A user is matched by any of its mapped email addresses.')),
    h('table', { class: 'log-table mapping-table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('Outlook field')), h('th', {}, ''), h('th', {}, t('HaloPSA user field')), h('th', {}, ''))),
      rows),
    h('div', { class: 'form-actions' }, add),
    h('h2', {}, t('New and existing users')),
    setup.sites_error ? h('p', { class: 'callout error' }, t('HaloPSA\'s sites could not be read: {error}', { error: setup.sites_error })) : null,
    h('div', { class: 'contacts-form' },
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Default site for new users')), site,
        h('span', { class: 'field-hint' }, t('A new user goes on the site whose email domain matches its address; else on this site.'))),
      h('label', { class: 'choice' }, update, t('Update existing users\' mapped fields that differ')),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, t('Excluded domains')), excluded,
        h('span', { class: 'field-hint' }, t('Contacts with an address in these domains are skipped.')))),
    error,
    h('div', { class: 'form-actions' }, save));
}

function scheduleForm(mailbox, schedule) {
  const on = h('input', { type: 'checkbox', id: 'contacts-schedule-on', checked: schedule.enabled });
  const every = h('select', { id: 'contacts-schedule-every', 'aria-label': t('How often') },
    INTERVALS.map(([m, label]) => h('option', { value: String(m), selected: m === schedule.every_minutes }, t(label))));
  if (!INTERVALS.some(([m]) => m === schedule.every_minutes)) {
    every.append(h('option', { value: String(schedule.every_minutes), selected: true }, t('every {n} minutes', { n: schedule.every_minutes })));
  }
  const save = async () => {
    try {
      await backend.contactsScheduleSet(mailbox.id, { enabled: on.checked, every_minutes: Number(every.value) });
      toast(on.checked ? t('Contacts are imported from this mailbox on a schedule.') : t('Scheduled imports are off for this mailbox.'));
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  on.addEventListener('change', save);
  every.addEventListener('change', save);
  return h('section', { class: 'contacts-schedule' },
    h('h2', {}, t('Schedule')),
    h('div', { class: 'schedule-row' },
      h('label', { class: 'choice' }, on, t('Import contacts from this mailbox on a schedule')), every),
    h('p', { class: 'subtle' }, t('Scheduled imports read only what changed in Outlook since the last one. A contact deleted in Outlook is reported, never deleted in HaloPSA.')));
}

function planDetail(p, labels) {
  switch (p.action) {
    case 'create': return t('on {site}', { site: p.site_name ?? p.site_id });
    case 'update': return p.changes.map((c) => `${labels.get(c.field) ?? c.field}: ${c.from ?? '—'} → ${c.to}`).join('; ');
    case 'unchanged': return p.note ?? '';
    default: return p.reason ?? '';
  }
}

/** The preview: counts as chips (a click filters) and every contact's decision. */
function previewView(preview, psaFields) {
  const labels = new Map(psaFields.map((f) => [f.key, verbatim(f.label)]));
  let only = null;
  const tbody = h('tbody', { id: 'preview-rows' });
  const paint = () => fill(tbody, preview.contacts
    .filter((p) => !only || p.action === only)
    .slice(0, 1000)
    .map((p) => h('tr', { class: 'log-row', 'data-action': p.action },
      h('td', {}, pill(p.action)),
      h('td', {}, p.display_name, p.folder ? h('span', { class: 'subtle' }, ` · ${p.folder}`) : null),
      h('td', {}, p.email ?? '—'),
      h('td', {}, planDetail(p, labels)))));
  const c = preview.counts;
  const chip = (action, n) => {
    const el = h('button', { class: `count-chip status-${TONE[action]}`, type: 'button', 'data-count': action }, `${word(OUTCOMES, action)}: ${n}`);
    el.addEventListener('click', () => { only = only === action ? null : action; paint(); });
    return el;
  };
  paint();
  return h('section', { class: 'contacts-preview', id: 'contacts-preview' },
    h('h2', {}, t('Preview')),
    h('p', { class: 'subtle' }, t('{n} contacts read from Outlook, matched against {users} HaloPSA users. Nothing was written.', { n: preview.contacts.length, users: preview.psa_users })),
    h('div', { class: 'log-counts' }, chip('create', c.create), chip('update', c.update), chip('unchanged', c.unchanged), chip('skip', c.skipped)),
    h('table', { class: 'log-table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('Action')), h('th', {}, t('Contact')), h('th', {}, t('Email')), h('th', {}, t('Detail')))),
      tbody));
}

/** The progress bar of a running import. */
function progressView() {
  const bar = h('progress', { id: 'contacts-progress-bar', max: 1, value: 0 });
  const line = h('span', { id: 'contacts-progress-text' }, t('Reading the address book and HaloPSA…'));
  const el = h('div', { class: 'contacts-progress', id: 'contacts-progress' }, bar, line);
  const update = (p) => {
    bar.max = Math.max(p.total, 1);
    bar.value = p.done;
    const left = p.eta_seconds == null ? '' : t(', about {s} s left', { s: Math.ceil(p.eta_seconds) });
    line.textContent = t('{done} of {total} contacts ({rate}/s{left})', {
      done: p.done, total: p.total, rate: p.per_second.toFixed(1), left,
    });
    el.dataset.done = p.done;
    el.dataset.total = p.total;
  };
  const finish = (run) => {
    const c = run.counts;
    const done = c.created + c.updated + c.unchanged + c.skipped + c.failed + c.removed;
    bar.max = Math.max(run.total, 1);
    bar.value = done;
    line.textContent = t('Import {state}: {done} of {total} contacts', { state: word(STATES, run.state), done, total: run.total });
    el.dataset.done = done;
    el.dataset.total = run.total;
  };
  return { el, update, finish };
}

function runRow(run, showMailbox, mailboxes, onOpen) {
  const c = run.counts;
  const name = mailboxes.find((m) => m.id === run.mailbox_id)?.name ?? run.mailbox_id;
  const tr = h('tr', { class: 'log-row', 'data-run': run.id, 'data-state': run.state, tabindex: 0 },
    h('td', {}, time(run.started_at)),
    showMailbox ? h('td', {}, name) : null,
    h('td', {}, word(TRIGGERS, run.trigger)),
    h('td', {}, h('span', { class: `status status-${run.state === 'finished' ? 'processed' : run.state === 'failed' ? 'failed' : 'skipped'}` }, word(STATES, run.state))),
    h('td', {}, String(run.total)),
    h('td', { 'data-count': 'created' }, String(c.created)),
    h('td', { 'data-count': 'updated' }, String(c.updated)),
    h('td', { 'data-count': 'unchanged' }, String(c.unchanged)),
    h('td', { 'data-count': 'skipped' }, String(c.skipped)),
    h('td', { 'data-count': 'failed' }, String(c.failed)),
    h('td', { 'data-count': 'removed' }, String(c.removed)));
  tr.addEventListener('click', () => onOpen(run));
  tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') onOpen(run); });
  return tr;
}

async function runDetails(run) {
  const panel = h('aside', { class: 'log-details', id: 'contacts-run-details', 'data-run': run.id },
    h('h2', {}, t('Import of {time}', { time: time(run.started_at) })),
    run.error ? h('p', { class: 'error-text' }, run.error) : null);
  try {
    const rows = await backend.contactsRunRows(run.id);
    panel.append(h('table', { class: 'log-table' },
      h('thead', {}, h('tr', {}, h('th', {}, t('Outcome')), h('th', {}, t('Contact')), h('th', {}, t('Email')), h('th', {}, t('HaloPSA user')), h('th', {}, t('Reason')), h('th', {}, t('Requests')))),
      h('tbody', { id: 'contacts-run-rows' }, rows.map((r) => h('tr', { 'data-outcome': r.outcome },
        h('td', {}, pill(r.outcome)),
        h('td', {}, r.display_name),
        h('td', {}, r.email ?? '—'),
        h('td', {}, r.psa_user_id ? String(r.psa_user_id) : '—'),
        h('td', {}, r.reason ?? ''),
        h('td', {}, r.requests.length
          ? h('details', { class: 'request' }, h('summary', {}, String(r.requests.length)),
            h('ul', { class: 'plain request-lines' }, r.requests.map((x) =>
              h('li', {}, `${x.method} ${x.url} → ${x.status ?? x.error ?? t('no response')} (${x.duration_ms} ms)`))))
          : '—'))))));
  } catch (e) {
    panel.append(h('p', { class: 'error-text' }, e.message));
  }
  return panel;
}

/** The import log: runs newest first, a click shows each contact's outcome. `mailbox` null:
 *  every mailbox (Monitoring). */
export function contactImportLog(mailbox, mailboxes = []) {
  const showMailbox = !mailbox;
  const tbody = h('tbody', { id: 'contacts-runs' });
  const details = h('div', {});
  const empty = h('p', { class: 'subtle', id: 'contacts-runs-empty', hidden: true }, t('No import yet.'));
  const open = async (run) => fill(details, await runDetails(run));
  const load = async () => {
    try {
      const runs = await backend.contactsRuns(mailbox?.id ?? null);
      fill(tbody, runs.map((r) => runRow(r, showMailbox, mailboxes, open)));
      empty.hidden = runs.length > 0;
    } catch (e) {
      toast(e.message, 'error');
    }
  };
  const el = h('section', { class: 'contacts-log' },
    h('h2', {}, t('Import log')),
    h('div', { class: 'table-scroll' }, h('table', { class: 'log-table', id: 'contacts-log' },
      h('thead', {}, h('tr', {},
        h('th', {}, t('Started')), showMailbox ? h('th', {}, t('Mailbox')) : null, h('th', {}, t('Trigger')), h('th', {}, t('State')),
        h('th', {}, t('Contacts')), h('th', {}, t('Created')), h('th', {}, t('Updated')), h('th', {}, t('Unchanged')),
        h('th', {}, t('Skipped')), h('th', {}, t('Failed')), h('th', {}, t('Removed')))),
      tbody)),
    empty, details);
  load();
  onEngineEvents(el, (events) => {
    if (events.some((e) => e.type === 'contact_import_done' && (!mailbox || e.mailbox_id === mailbox.id))) load();
  });
  return { el, load };
}

/** The Contact imports tab of `mailbox`. */
export function contactImportsPanel(mailbox, mailboxes) {
  const root = h('div', { class: 'contact-imports', id: 'contact-imports' });
  const body = h('div', {}, h('p', { class: 'subtle' }, t('Loading…')));
  root.append(
    h('header', { class: 'view-header' },
      h('h2', {}, t('Contact imports')),
      h('p', { class: 'subtle' }, t('Outlook contacts of this mailbox become HaloPSA users: matched by email address, new ones put on the site of their email domain.'))),
    permissionNote(mailbox), body);

  (async () => {
    let setup;
    try {
      setup = await backend.contactsSetup(mailbox.id);
    } catch (e) {
      fill(body, h('p', { class: 'callout error' }, e.message));
      return;
    }
    const previewSlot = h('div', {});
    const progress = progressView();
    progress.el.hidden = !setup.running;
    const previewButton = h('button', { class: 'button', type: 'button', id: 'contacts-preview-button' }, t('Preview'));
    const importButton = h('button', { class: 'button primary', type: 'button', id: 'contacts-import' }, t('Import contacts'));
    const cancelButton = h('button', { class: 'button', type: 'button', id: 'contacts-cancel', hidden: !setup.running }, t('Cancel'));
    importButton.disabled = setup.running;
    const log = contactImportLog(mailbox, mailboxes);

    previewButton.addEventListener('click', async () => {
      previewButton.disabled = true;
      fill(previewSlot, h('p', { class: 'subtle' }, t('Reading the address book and HaloPSA…')));
      try {
        fill(previewSlot, previewView(await backend.contactsPreview(mailbox.id), setup.psa_fields));
      } catch (e) {
        fill(previewSlot, h('p', { class: 'callout error', id: 'contacts-preview-error' }, e.message));
      } finally {
        previewButton.disabled = false;
      }
    });
    importButton.addEventListener('click', async () => {
      importButton.disabled = true;
      try {
        await backend.contactsImportStart(mailbox.id);
        progress.el.hidden = false;
        cancelButton.hidden = false;
      } catch (e) {
        importButton.disabled = false;
        toast(e.message, 'error');
      }
    });
    cancelButton.addEventListener('click', async () => {
      cancelButton.disabled = true;
      await backend.contactsImportCancel(mailbox.id).catch((e) => toast(e.message, 'error'));
    });
    onEngineEvents(root, (events) => {
      for (const e of events) {
        if (e.type === 'contact_import' && e.progress.mailbox_id === mailbox.id) {
          progress.el.hidden = false;
          progress.update(e.progress);
        }
        if (e.type === 'contact_import_done' && e.mailbox_id === mailbox.id) {
          importButton.disabled = false;
          cancelButton.hidden = true;
          cancelButton.disabled = false;
          const run = e.run;
          if (run) {
            progress.finish(run);
            fill(previewSlot);
            const c = run.counts;
            toast(t('Import {state}: {created} created, {updated} updated, {unchanged} unchanged, {skipped} skipped, {failed} failed.', {
              state: word(STATES, run.state), created: c.created, updated: c.updated, unchanged: c.unchanged, skipped: c.skipped, failed: c.failed,
            }), run.state === 'finished' ? 'info' : 'error');
          }
          if (e.error) toast(e.error, 'error');
        }
      }
    });

    fill(body,
      h('section', { class: 'contacts-run' },
        h('h2', {}, t('Import')),
        h('p', { class: 'subtle' }, t('Preview shows what an import would do with every contact; Import contacts does it.')),
        h('div', { class: 'form-actions' }, previewButton, importButton, cancelButton),
        progress.el),
      previewSlot,
      log.el,
      scheduleForm(mailbox, setup.schedule),
      settingsForm(setup, () => { fill(previewSlot); }));
  })();
  return root;
}
