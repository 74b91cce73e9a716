// The mailbox setup form: method, cloud, app registration, credential, mailbox address —
// with the exact Azure app-registration steps and permissions for the chosen method beside it.
// The credential is a client secret (with its optional expiry date) or a PFX certificate chosen
// with the native file picker; both go to the OS keyring through the `save_mailbox` command.

import * as backend from './backend.js';
import { h } from './dom.js';
import { N_, t, verbatim } from './i18n.js';

const CLOUDS = [
  { id: 'global', label: N_('Microsoft Graph global service'), portal: 'portal.azure.com' },
  { id: 'usgov_gcc_high', label: N_('US Government L4 (GCC High)'), portal: 'portal.azure.us' },
  { id: 'usgov_dod', label: N_('US Government L5 (DoD)'), portal: 'portal.azure.us' },
  { id: 'china', label: N_('China (operated by 21Vianet)'), portal: 'portal.azure.cn' },
  { id: 'custom', label: N_('Custom (sandbox or proxy)'), portal: null },
];

/** The delegated or application permissions a method needs, for the guidance panel. */
export function requiredPermissions(method, { shared = false, contacts = false } = {}) {
  if (method === 'scan') {
    const perms = [verbatim('Mail.ReadWrite'), verbatim('Mail.Send')];
    if (shared) perms.push(verbatim('Mail.ReadWrite.Shared'), verbatim('Mail.Send.Shared'));
    if (contacts) perms.push(verbatim('Contacts.Read'));
    perms.push('offline_access', verbatim('User.Read'));
    return { type: verbatim('Delegated'), perms };
  }
  const perms = [verbatim('Mail.ReadWrite'), verbatim('Mail.Send')];
  if (contacts) perms.push(verbatim('Contacts.Read'));
  return { type: verbatim('Application'), perms };
}

function field(label, input, hint) {
  return h('label', { class: 'field' },
    h('span', { class: 'field-label' }, label),
    input,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

function radio(name, value, label, checked, description) {
  return h('label', { class: 'choice' },
    h('input', { type: 'radio', name, value, checked, id: `${name}-${value}` }),
    h('span', {}, h('strong', {}, label), description ? h('span', { class: 'field-hint' }, description) : null));
}

function guidance(form) {
  const method = form.method.value;
  const credential = form.credential_kind.value;
  const shared = method === 'scan' && form.shared_mailbox.value.trim() !== '';
  const { type, perms } = requiredPermissions(method, { shared });
  const cloud = CLOUDS.find((c) => c.id === form.cloud.value);
  const platform = method === 'scan'
    ? (credential === 'public' ? verbatim('Mobile and desktop applications') : verbatim('Web'))
    : null;
  const steps = [
    t('In {portal}, open App registrations → New registration.', { portal: cloud?.portal ?? t('your Azure portal') }),
    t('Supported account types: single tenant (this organisation only).'),
  ];
  if (platform) {
    steps.push(t('Redirect URI: platform "{platform}", URI http://localhost (Microsoft ignores the port for localhost, so Mailroom can use any free port).', { platform }));
    steps.push(credential === 'public'
      ? t('Authentication → "Allow public client flows": not needed; no secret is used. Do not also register http://localhost under Web.')
      : t('Certificates & secrets → New client secret; paste its Value (not the Secret ID) below. Do not also register http://localhost under Mobile and desktop.'));
  } else {
    steps.push(credential === 'certificate'
      ? t('Certificates & secrets → Certificates → Upload the certificate (.cer) of the PFX you import below.')
      : t('Certificates & secrets → New client secret; paste its Value (not the Secret ID) below.'));
  }
  steps.push(t('API permissions → Add a permission → Microsoft Graph → {type} permissions: {permissions}.', { type, permissions: perms.join(', ') }));
  steps.push(t('Grant admin consent for your organisation.'));
  steps.push(t('Copy the Application (client) ID and Directory (tenant) ID from the Overview page.'));
  const items = [
    h('h3', {}, t('App registration')),
    h('ol', { class: 'steps', id: 'registration-steps' }, steps.map((s) => h('li', {}, s))),
    h('h3', {}, `${type} permissions`),
    h('ul', { class: 'perm-list', id: 'required-permissions' }, perms.map((p) => h('li', {}, h('code', {}, p)))),
  ];
  if (method === 'webhook') {
    items.push(h('p', { class: 'callout', id: 'access-policy-advice' },
      t('Without further restriction, application permissions reach every mailbox in the tenant. '),
      t('Limit the app to this mailbox with an application access policy '),
      h('code', {}, verbatim('New-ApplicationAccessPolicy -AppId <client id> -PolicyScopeGroupId <group> -AccessRight RestrictAccess')),
      t(' or Exchange RBAC for Applications. Changes take up to 30 minutes.'),
      ' ',
      h('a', { href: '', 'data-focus': 'mb-canary', id: 'access-policy-check-link' }, t('Mailroom checks it: name a mailbox the application must not reach.'))));
  } else {
    items.push(h('p', { class: 'callout' },
      t('The account that signs in has its own inbox processed — or, with a shared mailbox set, the shared mailbox, for which it needs Full Access.'),
      ' ',
      h('a', { href: '', 'data-focus': 'mb-sign-in-as', id: 'sign-in-as-link' }, t('Name that account: any other is refused.'))));
  }
  return items;
}

/** Renders the form; `onSaved(mailbox)` runs after a successful save. */
export function mailboxForm({ onSaved }) {
  const error = h('p', { class: 'form-error', id: 'mailbox-form-error', role: 'alert', hidden: true });
  const side = h('aside', { class: 'guidance', id: 'mailbox-guidance' });
  const form = h('form', { id: 'mailbox-form', class: 'form', novalidate: true },
    field(verbatim('Name'), h('input', { name: 'name', id: 'mb-name', required: true, placeholder: verbatim('Support'), autocomplete: 'off' })),
    h('fieldset', { class: 'choices' }, h('legend', {}, t('Method')),
      radio('method', 'scan', t('Mailbox scan'), true, t('Sign in as a user (delegated). Mailroom checks the inbox every minute.')),
      radio('method', 'webhook', t('Webhooks'), false, t('App-only credentials. Microsoft Graph notifies Mailroom of new mail instantly.'))),
    field(t('Authority'), h('select', { name: 'cloud', id: 'mb-cloud' }, CLOUDS.map((c) => h('option', { value: c.id }, t(c.label))))),
    h('div', { class: 'custom-cloud', hidden: true },
      field(t('Authority URL'), h('input', { name: 'authority_url', id: 'mb-authority', placeholder: 'http://127.0.0.1:47110' })),
      field(t('Graph URL'), h('input', { name: 'graph_url', id: 'mb-graph', placeholder: 'http://127.0.0.1:47111' }))),
    field(t('Directory (tenant) ID'), h('input', { name: 'tenant_id', id: 'mb-tenant', required: true, autocomplete: 'off' })),
    field(t('Application (client) ID'), h('input', { name: 'client_id', id: 'mb-client', required: true, autocomplete: 'off' })),
    h('fieldset', { class: 'choices', id: 'credential-choices' }, h('legend', {}, t('Credential')),
      radio('credential_kind', 'public', t('None (public client)'), true, t('Registered under "Mobile and desktop applications".')),
      radio('credential_kind', 'secret', t('Client secret'), false, t('Registered under "Web", or app-only.')),
      radio('credential_kind', 'certificate', t('Certificate (PFX)'), false, t('App-only: a certificate uploaded to the app registration.'))),
    h('div', { class: 'secret-field', hidden: true },
      field(t('Client secret value'), h('input', { name: 'client_secret', id: 'mb-secret', type: 'password', autocomplete: 'off' }),
        t('Stored in the OS keyring, never in Mailroom\'s database.')),
      field(t('Secret expires on (optional)'), h('input', { name: 'secret_expires_on', id: 'mb-secret-expires', type: 'date' }),
        t('The expiry shown under Certificates & secrets; Mailroom warns 30 days before it lapses.'))),
    h('div', { class: 'certificate-field', hidden: true },
      field(t('Certificate file (PFX)'), h('span', { class: 'file-pick' },
        h('span', { id: 'mb-pfx-path', class: 'file-chosen', 'data-empty': 'true', 'aria-live': 'polite' }, t('No file chosen')),
        h('button', { type: 'button', class: 'button', id: 'mb-pfx-choose' }, t('Choose…'))),
        t('A .pfx/.p12 with the private key. The key goes to the OS keyring; Mailroom keeps only the thumbprint and expiry.')),
      field(t('PFX password'), h('input', { name: 'pfx_password', id: 'mb-pfx-password', type: 'password', autocomplete: 'off' }))),
    h('div', { class: 'scan-only' },
      field(t('Shared mailbox (optional)'), h('input', { name: 'shared_mailbox', id: 'mb-shared', type: 'email', placeholder: 'helpdesk@contoso.com' }),
        t('Leave empty to process the signed-in user\'s own inbox.')),
      h('div', { class: 'own-inbox-only' },
        field(t('Only this account may sign in (optional)'), h('input', { name: 'sign_in_as', id: 'mb-sign-in-as', type: 'email', placeholder: 'support@contoso.com' }),
          t('Authorize pre-fills it and refuses a sign-in by any other account, so nobody\'s own inbox is processed by mistake.')))),
    h('div', { class: 'webhook-only', hidden: true },
      field(t('Mailbox address'), h('input', { name: 'mailbox_address', id: 'mb-address', type: 'email', placeholder: 'support@contoso.com' }),
        t('A licensed or shared mailbox whose UPN matches this address.')),
      field(t('A mailbox this application must not reach (optional)'), h('input', { name: 'canary', id: 'mb-canary', type: 'email', placeholder: 'ceo@contoso.com' }),
        t('A canary such as the CEO\'s mailbox: Test connection and the daily re-check try to read it with the application\'s token, and show the fix if they can.'))),
    error,
    h('div', { class: 'form-actions' },
      h('button', { type: 'submit', class: 'button primary', id: 'mb-save' }, t('Save mailbox')),
      h('a', { class: 'button', href: '#/' }, t('Cancel'))));

  const sync = () => {
    const method = form.method.value;
    const credential = form.credential_kind.value;
    form.querySelector('.custom-cloud').hidden = form.cloud.value !== 'custom';
    form.querySelector('.scan-only').hidden = method !== 'scan';
    form.querySelector('.webhook-only').hidden = method !== 'webhook';
    form.querySelector('.own-inbox-only').hidden = form.shared_mailbox.value.trim() !== '';
    form.querySelector('#credential_kind-public').disabled = method === 'webhook';
    form.querySelector('#credential_kind-certificate').disabled = method === 'scan';
    if (method === 'webhook' && credential === 'public') form.querySelector('#credential_kind-secret').checked = true;
    if (method === 'scan' && credential === 'certificate') form.querySelector('#credential_kind-public').checked = true;
    form.querySelector('.secret-field').hidden = form.credential_kind.value !== 'secret';
    form.querySelector('.certificate-field').hidden = form.credential_kind.value !== 'certificate';
    side.replaceChildren(...guidance(form));
  };
  form.querySelector('#mb-pfx-choose').addEventListener('click', async () => {
    try {
      const path = await backend.pfxChoose();
      if (path) {
        const shown = form.querySelector('#mb-pfx-path');
        shown.textContent = path;
        shown.dataset.empty = 'false';
      }
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
  // The guidance's links lead to the form's field that puts the advice to a live check.
  side.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-focus]');
    if (!link) return;
    event.preventDefault();
    const input = form.querySelector(`#${link.dataset.focus}`);
    input.scrollIntoView({ block: 'center' });
    input.focus();
  });
  form.addEventListener('input', sync);
  form.addEventListener('change', sync);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const data = Object.fromEntries(new FormData(form).entries());
    const extras = {
      secretExpiresOn: data.credential_kind === 'secret' ? (data.secret_expires_on || null) : null,
      pfxPassword: data.credential_kind === 'certificate' ? (data.pfx_password ?? '') : null,
    };
    // The safety settings go to the saved mailbox; their addresses are checked first, so a
    // mistake is told before anything is saved.
    const canary = data.method === 'webhook' ? data.canary.trim() : '';
    const signInAs = data.method === 'scan' && !data.shared_mailbox.trim() ? data.sign_in_as.trim() : '';
    for (const key of ['secret_expires_on', 'pfx_password', 'canary', 'sign_in_as']) delete data[key];
    if (data.credential_kind !== 'secret') delete data.client_secret;
    const badAddress = [['#mb-canary', canary], ['#mb-sign-in-as', signInAs]]
      .find(([id, value]) => value && !form.querySelector(id).checkValidity());
    const sameAsMailbox = canary && canary.toLowerCase() === (data.mailbox_address ?? '').trim().toLowerCase();
    if (badAddress || sameAsMailbox) {
      error.textContent = sameAsMailbox
        ? t('The mailbox that must stay out of reach must be another mailbox than the one Mailroom processes.')
        : t('\'{value}\' is not an email address.', { value: badAddress[1] });
      error.dataset.code = 'invalid_input';
      error.hidden = false;
      return;
    }
    try {
      const mailbox = await backend.saveMailbox(data, extras);
      if (canary) await backend.mailboxCanarySet(mailbox.id, canary);
      if (signInAs) await backend.mailboxSignInAsSet(mailbox.id, signInAs);
      form.reset();
      const shown = form.querySelector('#mb-pfx-path');
      shown.textContent = t('No file chosen');
      shown.dataset.empty = 'true';
      sync();
      onSaved(mailbox);
    } catch (e) {
      error.textContent = e.message;
      error.dataset.code = e.code;
      error.hidden = false;
    }
  });
  sync();
  return h('div', { class: 'form-layout' }, form, side);
}
