// The *Integration* area: HaloPSA's setup guide for a third-party product, done for Mailroom,
// one card per step. Each card says what to do in the PSA (menu paths, field values with copy
// buttons) and has a *Check* that verifies the step through the PSA's API (crates/engine
// integration.rs); the card turns green or red with the precise reason. Results are kept, so
// the area shows the last check after a restart.

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { refreshEngine } from './live.js';
import { connectionLine } from './monitoring.js';
import { LANGUAGES, language, locale, setLanguage, t, tx, verbatim } from './i18n.js';
import { certificateCard, testCard, webhookCard } from './integration-webhook.js';
import { copyable, createForMe, setting, stepCard } from './wizard.js';

const AGENT_NAME = verbatim('Mailroom Agent');
const APPLICATION_NAME = verbatim('Mailroom');

/** Step 1: the instance and the API application's credentials, checked on save. */
function connectionCard(step, conn, onSaved) {
  const field = (id, label, attrs = {}, hint = null) => h('label', { class: 'field' }, h('span', {}, label),
    h('input', { id, ...attrs }), hint ? h('small', { class: 'subtle' }, hint) : null);
  const form = h('form', { class: 'psa-form', id: 'psa-form' },
    field('psa-url', t('Instance URL'), { placeholder: 'https://yourcompany.halopsa.com', required: true, value: conn?.base_url ?? '' }),
    field('psa-client-id', t('Client ID'), { required: true, autocomplete: 'off', value: conn?.client_id ?? '' },
      t('From the API application of step 2.')),
    field('psa-secret', t('Client secret'), { type: 'password', required: true, autocomplete: 'off' },
      conn ? t('Enter it again to change the connection. It is kept in the OS keyring only.') : t('Kept in the OS keyring only.')),
    field('psa-tenant', t('Tenant (hosted instances)'), { value: conn?.tenant ?? '' },
      t('Only for instances hosted by Halo that sign in through a shared authorisation server.')),
    h('div', { class: 'form-actions' }, h('button', { class: 'button primary', type: 'submit', id: 'psa-save' }, t('Save and check'))));
  const card = stepCard(1, step, {
    bodyLabel: conn ? t('Change the connection') : t('Connect'),
    intro: conn ? connectionLine(conn) : t('Where your HaloPSA is, and the API application Mailroom signs in as.'),
    body: form,
    onCheck: conn ? async () => (await backend.integrationCheck('connection'))[0] : null,
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = (id) => form.querySelector(`#${id}`).value.trim();
    const save = form.querySelector('#psa-save');
    save.disabled = true;
    try {
      const { check: result } = await backend.psaConnectionSet({ baseUrl: v('psa-url'), clientId: v('psa-client-id'),
        clientSecret: form.querySelector('#psa-secret').value, tenant: v('psa-tenant') || null });
      // The engine picked the new connection up; show its state.
      refreshEngine();
      toast(result.ok ? t('HaloPSA connected.') : t('Saved, but {summary}', { summary: result.summary }), result.ok ? 'info' : 'error');
      await onSaved();
    } catch (error) {
      toast(error.message, 'error');
    } finally {
      save.disabled = false;
    }
  });
  card.card.insertBefore(languageField(), card.card.querySelector('.step-body'));
  return card.card;
}

/** The interface language: kept, and switched at once. */
function languageField() {
  const select = h('select', { id: 'ui-language' },
    LANGUAGES.map((l) => h('option', { value: l.id, selected: l.id === language() }, l.name)));
  select.addEventListener('change', async () => {
    try {
      await backend.uiLanguageSet(select.value);
      setLanguage(select.value);
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  return h('label', { class: 'field language-field' }, h('span', {}, t('Interface language')), select);
}

/** Step 2: the API-only agent, the API application and its permissions. */
function agentCard(step, permissions, connected) {
  const table = h('table', { class: 'permissions', id: 'permissions' },
    h('thead', {}, h('tr', {}, h('th', {}, t('Permission')), h('th', {}, t('Why Mailroom needs it')))),
    h('tbody', {}, permissions.map((p) => h('tr', { 'data-scope': p.scope },
      h('td', {}, h('code', {}, p.scope), p.optional ? h('span', { class: 'subtle' }, ' optional') : null),
      h('td', {}, tx(p.why))))));
  const body = h('div', {},
    h('h3', {}, t('Create the agent')),
    h('p', {}, t('In HaloPSA, go to '), h('strong', {}, verbatim('Configuration > Teams & Agents > Agents')), t(' and click '), h('strong', {}, verbatim('New')), ':'),
    h('ul', { class: 'settings' },
      setting(verbatim('Username'), copyable(AGENT_NAME, 'copy-agent-name')),
      setting(verbatim('Is an API-only Agent'), h('strong', {}, verbatim('Yes')), t(' — it uses no licence and cannot sign in to the web app')),
      setting(verbatim('Roles'), t('Administrator (what Mailroom may do is set by the application\'s permissions below)')),
      setting(verbatim('First Name / Surname'), verbatim('Mailroom / Agent')),
      setting(verbatim('Default Team'), verbatim('No Default Team'))),
    h('h3', {}, t('Create the API application')),
    h('p', {}, t('Go to '), h('strong', {}, verbatim('Configuration > Integrations > HaloPSA API > View Applications')), t(' and click '), h('strong', {}, verbatim('New')), ':'),
    h('ul', { class: 'settings' },
      setting(verbatim('Application Name'), copyable(APPLICATION_NAME, 'copy-application-name')),
      setting(verbatim('Authentication Method'), verbatim('Client ID and Secret (Services)')),
      setting(verbatim('Login Type'), verbatim('Agent')),
      setting(verbatim('Agent to log in as'), AGENT_NAME),
      setting(verbatim('Client ID and Client Secret'), t('copy them into step 1'))),
    h('p', {}, t('On its '), h('strong', {}, verbatim('Permissions')), t(' tab, allow:')),
    table);
  return stepCard(2, step, {
    bodyLabel: t('What to do in HaloPSA'),
    intro: t('The agent Mailroom acts as, and what it may do.'),
    body,
    onCheck: connected ? async () => (await backend.integrationCheck('agent'))[0] : null,
  }).card;
}

/** Step 3: the ticket types, read live from the PSA. */
function scopeCard(step, connected) {
  const form = h('form', { class: 'scope-form', id: 'scope-form' }, h('p', { class: 'subtle' }, t('Loading the ticket types…')));
  let card;
  const load = async () => {
    if (!connected) {
      fill(form, h('p', { class: 'subtle' }, t('Connect HaloPSA (step 1) to choose from its ticket types.')));
      return;
    }
    try {
      const view = await backend.integrationScopeGet();
      const select = h('select', { id: 'scope-default-type' },
        h('option', { value: '' }, t('HaloPSA\'s default ticket type')),
        view.ticket_types.map((type) => h('option', { value: String(type.id), selected: view.settings.default_ticket_type_id === type.id }, type.name)));
      const boxes = view.ticket_types.map((type) => h('label', { class: 'choice' },
        h('input', { type: 'checkbox', name: 'tab-type', value: String(type.id), checked: view.settings.tab_ticket_type_ids.includes(type.id) }),
        ` ${type.name}`));
      fill(form,
        h('label', { class: 'field' }, h('span', {}, t('Type of tickets logged from email')), select,
          h('small', { class: 'subtle' }, t('Used when a mailbox names no ticket type of its own.'))),
        h('fieldset', { class: 'choices', id: 'scope-tab-types' }, h('legend', {}, t('Ticket types that show Mailroom\'s tab')),
          boxes, h('small', { class: 'subtle' }, t('We recommend at least your Incident, Service Request, Problem and Change Request types.'))),
        h('div', { class: 'form-actions' }, h('button', { class: 'button primary', type: 'submit', id: 'scope-save' }, t('Save and check'))));
    } catch (error) {
      fill(form, h('p', { class: 'error-text' }, error.message));
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const value = form.querySelector('#scope-default-type').value;
    const settings = {
      default_ticket_type_id: value ? Number(value) : null,
      tab_ticket_type_ids: [...form.querySelectorAll('input[name="tab-type"]:checked')].map((b) => Number(b.value)),
    };
    try {
      card.paint(await backend.integrationScopeSet(settings));
      toast(t('Scope saved.'));
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  card = stepCard(3, step, {
    bodyLabel: t('Choose the ticket types'),
    intro: t('Which ticket types Mailroom logs and shows its tab on.'),
    body: form,
    onCheck: connected ? async () => (await backend.integrationCheck('scope'))[0] : null,
  });
  load();
  return card.card;
}

/** Step 4: the ticket tab — Mailroom's page inside each ticket of the chosen types. */
function tabCard(step, connected) {
  const body = h('div', {}, h('p', { class: 'subtle' }, t('Loading…')));
  let card;
  const load = async () => {
    try {
      const view = await backend.integrationTabGet();
      const scheme = h('select', { id: 'tab-scheme' },
        h('option', { value: 'jwt', selected: view.settings?.scheme !== 'hmac_hex' }, t('Signed token (JWT, HS256) in "token"')),
        h('option', { value: 'hmac_hex', selected: view.settings?.scheme === 'hmac_hex' }, t('HMAC-SHA256 signature of agent, ticket and time')));
      const form = h('form', { class: 'scope-form', id: 'tab-form' },
        h('label', { class: 'field' }, h('span', {}, verbatim('Iframe secret')),
          h('input', { id: 'tab-secret', type: 'password', autocomplete: 'off', required: true }),
          h('small', { class: 'subtle' }, view.settings ? t('Saved in the OS keyring. Enter it again to change it.') : t('Kept in the OS keyring only.'))),
        h('label', { class: 'field' }, h('span', {}, t('Secure URL parameter')), scheme,
          h('small', { class: 'subtle' }, t('HaloPSA does not document what it sends; refused requests below show what arrived.'))),
        h('div', { class: 'form-actions' }, h('button', { class: 'button primary', type: 'submit', id: 'tab-save' }, t('Save and check'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        try {
          card.paint(await backend.integrationTabSet(form.querySelector('#tab-secret').value, scheme.value));
          toast(t('Tab secret saved.'));
          load();
        } catch (error) {
          toast(error.message, 'error');
        }
      });
      const refused = view.rejections.length
        ? h('div', { id: 'tab-rejections' }, h('h3', {}, t('Refused requests')),
          h('ul', { class: 'plain' }, view.rejections.slice(0, 5).map((r) =>
            h('li', {}, t('{time} — {reason} (carried: {parameters})', { time: new Date(r.at).toLocaleString(locale()), reason: r.reason, parameters: r.parameters.join(', ') || t('nothing') })))))
        : null;
      fill(body,
        createForMe('tab-create',
          t('Creates the tab (needs the optional admin permission) and adds it to the ticket types of step 3. HaloPSA\'s API cannot tick "Send secure URL parameter" or show the Iframe secret: do those two by hand.'),
          backend.integrationTabCreate, () => card,
          t('The tab is in HaloPSA and allowed on the chosen ticket types. Tick "Send secure URL parameter" on it and copy its Iframe secret here.')),
        h('p', {}, t('Or by hand: in HaloPSA, go to '), h('strong', {}, verbatim('Configuration > Custom Objects > Custom Tabs')), t(' and click '), h('strong', {}, verbatim('New')), ':'),
        h('ul', { class: 'settings' },
          setting(verbatim('Tab Name'), copyable(verbatim('Mailroom'), 'copy-tab-name')),
          setting(verbatim('Sequence'), t('1 (or higher to show it after other tabs)')),
          setting(verbatim('Type'), verbatim('Iframe')),
          setting(verbatim('Url'), copyable(view.url, 'copy-tab-url')),
          setting(verbatim('Send secure URL parameter'), h('strong', {}, 'ticked')),
          setting(verbatim('Iframe secret'), t('copy it into the field below'))),
        h('p', {}, t('Then, in '), h('strong', {}, verbatim('Configuration > Tickets > Ticket Types')), t(', open each type chosen in step 3 > Allowed Values > Custom Tabs > Add > Mailroom, and save.')),
        form, refused);
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
    }
  };
  card = stepCard(4, step, {
    bodyLabel: t('What to do in HaloPSA'),
    intro: t('Mailroom\'s page inside each ticket: the emails that opened and updated it, each attempt and its log.'),
    body,
    onCheck: connected ? async () => (await backend.integrationCheck('tab'))[0] : null,
  });
  load();
  return card.card;
}

/** Closing a ticket when its requester's reply asks to (off by default). */
function closeOnRequestForm(settings) {
  const enabled = h('input', { type: 'checkbox', id: 'close-on-request', checked: settings.close_on_request });
  const phrases = h('textarea', { id: 'close-phrases', rows: 6 }, settings.close_phrases.join('\n'));
  const form = h('form', { class: 'scope-form', id: 'close-form' },
    h('h3', {}, t('Close tickets when the requester asks')),
    h('label', { class: 'choice' }, enabled,
      h('span', {}, t('When the ticket\'s requester replies with one of these phrases, close the ticket with "Mailroom resolve" and a private note naming the email.'))),
    h('label', { class: 'field' }, h('span', {}, t('Phrases (one per line)')), phrases,
      h('small', { class: 'subtle' }, t('Looked for in the reply\'s own text, not the quoted history; case and punctuation are ignored.'))),
    h('div', { class: 'form-actions' }, h('button', { class: 'button', type: 'submit', id: 'close-save' }, t('Save'))));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const saved = await backend.integrationResolveCloseSet(enabled.checked,
        phrases.value.split('\n').map((p) => p.trim()).filter(Boolean));
      toast(saved.close_on_request ? t('Requesters can now close their tickets by email.') : t('Tickets are no longer closed by email.'));
    } catch (error) {
      toast(error.message, 'error');
    }
  });
  return form;
}

/** Step 5: the custom action Mailroom closes tickets with. */
function resolveCard(step, connected) {
  const body = h('div', {}, h('p', { class: 'subtle' }, connected ? t('Loading the statuses…') : t('Connect HaloPSA (step 1) first.')));
  let card;
  const load = async () => {
    if (!connected) return;
    try {
      const view = await backend.integrationResolveGet();
      const select = h('select', { id: 'resolve-status' },
        h('option', { value: '' }, t('Choose your Closed/Resolved status')),
        view.statuses.map((st) => h('option', { value: String(st.id), selected: view.settings.status_id === st.id }, st.name)));
      const form = h('form', { class: 'scope-form', id: 'resolve-form' },
        h('label', { class: 'field' }, h('span', {}, verbatim('Status After Action')), select),
        h('div', { class: 'form-actions' }, h('button', { class: 'button primary', type: 'submit', id: 'resolve-save' }, t('Save and check'))));
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (!select.value) { toast(t('Choose the status first.'), 'error'); return; }
        try {
          card.paint(await backend.integrationResolveSet(Number(select.value)));
        } catch (error) {
          toast(error.message, 'error');
        }
      });
      fill(body,
        createForMe('resolve-create',
          t('Creates (or corrects) the action with the status chosen below. Needs the optional admin permission.'),
          backend.integrationResolveCreate, () => card),
        h('p', {}, t('Or by hand: in HaloPSA, go to '), h('strong', {}, verbatim('Configuration > Tickets > Actions')), t(' and click '), h('strong', {}, verbatim('New')), ':'),
        h('ul', { class: 'settings' },
          setting(verbatim('Outcome Description'), copyable(verbatim('Mailroom resolve'), 'copy-resolve-name'), t(' (character exact)')),
          setting(verbatim('Button Name'), copyable(verbatim('Mailroom resolve'), 'copy-resolve-button')),
          setting(verbatim('Status After Action'), t('your Closed/Resolved status (choose it below too)')),
          setting(verbatim('Details'), t('Action is visible, visible outside of Workflows, Hide from Ticket Header, Hide from User: all on')),
          setting(verbatim('Field List'), t('add the Private Note field'))),
        form,
        closeOnRequestForm(view.settings));
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
    }
  };
  card = stepCard(5, step, {
    bodyLabel: t('What to do in HaloPSA'),
    intro: t('The custom action Mailroom closes tickets with, hidden from the requester.'),
    body,
    onCheck: connected ? async () => (await backend.integrationCheck('resolve'))[0] : null,
  });
  load();
  return card.card;
}

/** The *Integration* view. */
export function integrationPanel() {
  const body = h('div', { class: 'stepper', id: 'integration-steps' }, h('p', { class: 'subtle' }, t('Loading…')));
  const root = h('div', { id: 'integration' },
    h('header', { class: 'view-header' }, h('h1', {}, t('Integration')),
      h('p', { class: 'subtle' }, t('Set up HaloPSA for Mailroom, step by step. Each step is checked through the PSA\'s API.'))),
    body);
  const load = async () => {
    try {
      const [status, conn] = await Promise.all([backend.integrationStatus(), backend.psaConnectionGet()]);
      const byId = Object.fromEntries(status.steps.map((s) => [s.step, s]));
      fill(body,
        connectionCard(byId.connection, conn, load),
        agentCard(byId.agent, status.permissions, status.connected),
        scopeCard(byId.scope, status.connected),
        tabCard(byId.tab, status.connected),
        resolveCard(byId.resolve, status.connected),
        certificateCard(byId.certificate, status.connected),
        webhookCard(byId.webhook, status.connected),
        testCard(byId.test, status.connected));
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
    }
  };
  load();
  return root;
}
