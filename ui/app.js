// Mailroom's UI: a hash router over a few views. Navigation mirrors the PSA's mailbox setup:
// a mailbox list; per mailbox the tabs Incoming, Contact imports and Inbound log; a global
// Monitoring view; and the Integration wizard.

import * as backend from './backend.js';
import { confirmDialog, emptyState, h, toast } from './dom.js';
import { contactImportsPanel } from './contact-imports.js';
import { dashboardView } from './dashboard.js';
import { mailboxForm } from './mailbox-form.js';
import { incomingPanel } from './mailbox-incoming.js';
import { inboundLogPanel } from './inbound-log.js';
import { watchEngine } from './live.js';
import { monitoringPanel } from './monitoring.js';
import { integrationPanel } from './integration.js';
import { outboundLogPanel } from './outbound-log.js';
import { N_, setLanguage, t, verbatim } from './i18n.js';

const state = { mailboxes: [] };

const MAILBOX_TABS = [
  { id: 'incoming', label: N_('Incoming') },
  { id: 'contacts', label: N_('Contact imports') },
  { id: 'log', label: N_('Inbound log') },
  { id: 'outbound', label: N_('Outbound log') },
];

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'mailboxes' && parts[1]) {
    return { view: 'mailbox', id: decodeURIComponent(parts[1]), tab: parts[2] || 'incoming' };
  }
  if (parts[0] === 'monitoring' || parts[0] === 'integration' || parts[0] === 'add-mailbox') {
    return { view: parts[0] };
  }
  return { view: 'home' };
}

function renderMailboxList(route) {
  const list = document.getElementById('mailbox-list');
  list.replaceChildren(...state.mailboxes.map((m) => {
    const active = route.view === 'mailbox' && route.id === m.id;
    const status = m.sign_in_required ? 'needs-sign-in' : (m.connected_account ? 'connected' : 'not-connected');
    const title = m.sign_in_required ? t('Sign in again: {reason}', { reason: m.sign_in_required })
      : (m.connected_account ? t('Connected as {account}', { account: m.connected_account }) : t('Not connected'));
    return h('li', {},
      h('a', {
        href: `#/mailboxes/${encodeURIComponent(m.id)}/incoming`,
        class: active ? 'active' : '',
        'data-mailbox': m.name,
        'aria-current': active ? 'page' : false,
      },
      h('span', { class: `dot ${status}`, title, 'data-state': status }),
      m.name));
  }));
  document.getElementById('mailbox-list-empty').hidden = state.mailboxes.length > 0;
  for (const link of document.querySelectorAll('[data-nav]')) {
    const active = link.dataset.nav === route.view;
    link.classList.toggle('active', active);
    if (active) link.setAttribute('aria-current', 'page'); else link.removeAttribute('aria-current');
  }
}

function homeView() {
  if (state.mailboxes.length === 0) {
    return emptyState({
      id: 'empty-mailboxes',
      title: t('Connect your first mailbox'),
      body: [
        t('Mailroom turns the mail arriving in a Microsoft 365 mailbox into HaloPSA tickets, and replies into updates on the ticket they belong to.'),
        t('Add a mailbox to start: sign in to scan a licensed or shared mailbox, or use app-only credentials with webhooks for instant delivery.'),
      ],
      action: h('a', { class: 'button primary', href: '#/add-mailbox', id: 'empty-add-mailbox' }, t('Add a mailbox')),
    });
  }
  return dashboardView();
}

function addMailboxView() {
  return h('div', { id: 'add-mailbox-view' },
    h('header', { class: 'view-header' }, h('h1', {}, t('Add a mailbox')),
      h('p', { class: 'subtle' }, t('Register an app in Microsoft Entra ID, then enter its details here. The steps for the method you choose are on the right.'))),
    mailboxForm({
      onSaved: async (mailbox) => {
        await refreshMailboxes();
        toast(t('Mailbox "{name}" added.', { name: mailbox.name }));
        location.hash = `#/mailboxes/${encodeURIComponent(mailbox.id)}/incoming`;
      },
    }));
}

const CREDENTIAL_WORDS = {
  public: N_('its sign-in (refresh token)'),
  secret: N_('its client secret and tokens'),
  certificate: N_('its certificate with the private key and its tokens'),
};

async function removeMailbox(mailbox) {
  const lost = [
    mailbox.mailbox_address
      ? t('The mailbox "{name}" ({address}) stops being processed and is removed from Mailroom.', { name: mailbox.name, address: mailbox.mailbox_address })
      : t('The mailbox "{name}" stops being processed and is removed from Mailroom.', { name: mailbox.name }),
    t('Its credentials are deleted from this computer\'s keyring: {what}.', { what: t(CREDENTIAL_WORDS[mailbox.credential_kind] ?? N_('its credentials')) }),
  ];
  if (mailbox.method !== 'scan') lost.push(t('Its Microsoft Graph subscription is cancelled.'));
  lost.push(t('Its inbound log is kept. The app registration in Entra and the tickets in the PSA are not touched.'));
  const sure = await confirmDialog({
    title: t('Remove {name}?', { name: mailbox.name }),
    body: lost,
    confirmLabel: t('Remove mailbox'),
    danger: true,
  });
  if (!sure) return;
  try {
    await backend.removeMailbox(mailbox.id);
    await refreshMailboxes();
    location.hash = '#/';
    toast(t('Mailbox "{name}" removed.', { name: mailbox.name }));
  } catch (e) {
    toast(e.message, 'error');
  }
}

/** The header's "More" menu: actions that are rare or destructive, out of the way. */
function mailboxMenu(mailbox) {
  const menu = h('details', { class: 'menu', id: 'mailbox-menu' },
    h('summary', { class: 'button subtle-button', id: 'mailbox-menu-button', 'aria-label': t('More actions') }, t('More ▾')));
  const remove = h('button', { class: 'menu-item danger-text', id: 'remove-mailbox', type: 'button' }, t('Remove mailbox…'));
  remove.addEventListener('click', () => {
    menu.open = false;
    removeMailbox(mailbox);
  });
  menu.append(h('div', { class: 'menu-list', role: 'menu' }, remove));
  return menu;
}

function mailboxView(route) {
  const mailbox = state.mailboxes.find((m) => m.id === route.id);
  if (!mailbox) {
    return emptyState({
      id: 'mailbox-missing',
      title: t('This mailbox no longer exists'),
      body: t('It may have been removed. Choose another mailbox on the left.'),
    });
  }
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, MAILBOX_TABS.map((tab) =>
    h('a', {
      role: 'tab',
      id: `tab-${tab.id}`,
      href: `#/mailboxes/${encodeURIComponent(mailbox.id)}/${tab.id}`,
      class: tab.id === route.tab ? 'active' : '',
      'aria-selected': tab.id === route.tab ? 'true' : 'false',
    }, t(tab.label))));
  return h('div', { class: 'mailbox' },
    h('header', { class: 'view-header' },
      h('div', { class: 'view-title' },
        h('h1', {}, mailbox.name),
        mailboxMenu(mailbox)),
      h('p', { class: 'subtle' }, mailbox.method === 'scan' ? t('Mailbox scan (delegated sign-in)') : t('Webhooks (application permissions)'))),
    tabs,
    h('div', { class: 'tab-panel', role: 'tabpanel' }, mailboxTab(mailbox, route.tab)));
}

function mailboxTab(mailbox, tab) {
  switch (tab) {
    case 'contacts':
      return contactImportsPanel(mailbox, state.mailboxes);
    case 'log':
      return inboundLogPanel(mailbox, state.mailboxes);
    case 'outbound':
      return outboundLogPanel(mailbox, state.mailboxes);
    default:
      return incomingPanel(mailbox, { onChanged: async () => { await refreshMailboxes(); render(); } });
  }
}

function monitoringView() {
  return monitoringPanel(state.mailboxes);
}

function integrationView() {
  return integrationPanel();
}

function render() {
  const route = parseRoute();
  renderMailboxList(route);
  const view = document.getElementById('view');
  let content;
  switch (route.view) {
    case 'mailbox': content = mailboxView(route); break;
    case 'monitoring': content = monitoringView(); break;
    case 'integration': content = integrationView(); break;
    case 'add-mailbox': content = addMailboxView(); break;
    default: content = homeView();
  }
  view.replaceChildren(content);
  view.dataset.view = route.view;
}

async function refreshMailboxes() {
  try {
    state.mailboxes = await backend.listMailboxes();
  } catch (error) {
    toast(t('Could not load mailboxes: {error}', { error: error.message }), 'error');
  }
}

// Sandbox mode only (a build without the sandbox has no sandbox commands at all).
async function showSandbox() {
  let info = null;
  try {
    info = await backend.sandboxInfo();
  } catch (error) {
    toast(error.message, 'error');
  }
  const banner = document.getElementById('sandbox-banner');
  banner.hidden = !info;
  if (!info) return;
  document.body.dataset.sandbox = 'true';
  const rows = [
    [t('Tenant'), `${info.tenant} (${info.domain})`],
    [t('Identity'), info.authority_url],
    [verbatim('Graph'), info.graph_url],
    [verbatim('HaloPSA'), info.psa_url],
    [t('Control API'), info.control_url],
  ];
  document.getElementById('sandbox-endpoints').replaceChildren(
    ...rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  document.getElementById('sandbox-send-test').addEventListener('click', async () => {
    try {
      toast(await backend.sandboxSendTestEmail());
    } catch (error) {
      toast(error.message, 'error');
    }
  });
}

async function start() {
  document.getElementById('add-mailbox').addEventListener('click', () => { location.hash = '#/add-mailbox'; });
  window.addEventListener('hashchange', render);
  // The interface language (Integration, step 1): a switch renders everything again.
  window.addEventListener('mailroom:language', render);
  try {
    setLanguage(await backend.uiLanguageGet());
  } catch (error) {
    setLanguage('en');
    toast(error.message, 'error');
  }
  await refreshMailboxes();
  render();
  watchEngine();
  let sandbox = false;
  try {
    const info = await backend.appInfo();
    document.getElementById('app-version').textContent = `v${info.version}`;
    document.getElementById('app-version').title = t('Data: {data}\nLogs: {logs}', { data: info.data_dir, logs: info.log_dir });
    sandbox = info.sandbox;
  } catch (error) {
    toast(error.message, 'error');
  }
  if (sandbox) await showSandbox();
  document.body.dataset.ready = 'true';
}

start();
