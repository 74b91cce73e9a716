// The Incoming tab of a mailbox: how it is connected to Microsoft 365.
// Mailbox scan: a warning about whose inbox is processed, then Authorize (system browser, the
// URL is also shown with a copy button), Cancel, the connected account, Disconnect.
// Webhooks: Connect (acquire an app-only token and probe the inbox).
// Both: Test connection (inbox listing, granted vs needed permissions, a probe per permission),
// credential expiry warnings, and a plain-language diagnosis with a stable code on failure.

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { N_, t, tx, verbatim } from './i18n.js';

const CLOUD_LABELS = {
  global: N_('Microsoft Graph global service'),
  usgov_gcc_high: N_('US Government L4 (GCC High)'),
  usgov_dod: N_('US Government L5 (DoD)'),
  china: N_('China (21Vianet)'),
  custom: N_('Custom'),
};

const CREDENTIAL_LABELS = { public: N_('None (public client)'), secret: N_('Client secret'), certificate: N_('Certificate') };

function diagnosisBox(error) {
  const d = error.diagnosis;
  return h('div', { class: 'diagnosis callout error', id: 'diagnosis', role: 'alert', 'data-code': d?.code ?? error.code },
    h('strong', {}, d ? t('What went wrong: ') : t('Error: ')),
    h('span', { id: 'diagnosis-cause' }, d ? d.cause : error.message),
    d ? h('p', {}, h('strong', {}, t('How to fix it: ')), h('span', { id: 'diagnosis-fix' }, d.fix)) : null,
    h('p', { class: 'subtle' }, t('Code: {code}', { code: d?.code ?? error.code })));
}

function details(mailbox, connected = Boolean(mailbox.connected_account)) {
  const rows = [
    [t('Method'), mailbox.method === 'scan' ? t('Mailbox scan (delegated)') : t('Webhooks (application)')],
    [t('Authority'), CLOUD_LABELS[mailbox.cloud] ? t(CLOUD_LABELS[mailbox.cloud]) : mailbox.cloud],
  ];
  if (mailbox.cloud === 'custom') {
    rows.push([t('Authority URL'), mailbox.authority_url], [t('Graph URL'), mailbox.graph_url]);
  }
  rows.push(
    [t('Directory (tenant) ID'), mailbox.tenant_id],
    [t('Application (client) ID'), mailbox.client_id],
    [t('Credential'), CREDENTIAL_LABELS[mailbox.credential_kind] ? t(CREDENTIAL_LABELS[mailbox.credential_kind]) : mailbox.credential_kind],
  );
  if (mailbox.certificate_thumbprint) rows.push([t('Certificate thumbprint'), mailbox.certificate_thumbprint]);
  if (mailbox.credential_expires_at) rows.push([t('Credential expires'), mailbox.credential_expires_at.slice(0, 10)]);
  if (mailbox.shared_mailbox) rows.push([t('Shared mailbox'), mailbox.shared_mailbox]);
  if (mailbox.mailbox_address) rows.push([t('Mailbox address'), mailbox.mailbox_address]);
  const locked = connected;
  return h('section', { class: 'connection-details', id: 'connection-details', 'data-locked': locked ? 'true' : 'false' },
    h('dl', { class: 'details' }, rows.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '')])),
    locked ? h('p', { class: 'subtle', id: 'locked-note' }, t('These settings are locked while the mailbox is connected. Disconnect first to change them.')) : null);
}

/** The findings of the mailbox checks: a mark, what was found, the fix beside it. */
function checksList(checks, id) {
  return h('ul', { class: 'checks', id }, checks.map((c) => {
    const ok = c.state === 'ok';
    const mark = ok ? '✓' : (c.state === 'failed' ? '✕' : '–');
    return h('li', { class: `check ${ok ? 'check-ok' : (c.state === 'failed' ? 'check-failed' : 'check-optional')}`, 'data-check': c.id, 'data-state': c.state },
      h('span', { class: 'check-mark', 'aria-hidden': 'true' }, mark),
      h('div', {},
        h('strong', {}, tx(c.title)), ' — ', tx(c.detail),
        c.fix ? h('div', { class: 'check-fix' }, t('Fix: {fix}', { fix: tx(c.fix) })) : null,
        c.request_id ? h('div', { class: 'subtle' }, t('Request id: {id}', { id: c.request_id })) : null));
  }));
}

/** "2026-12-07T13:47:21.123Z" → "2026-12-07 13:47". */
const minute = (time) => time.slice(0, 16).replace('T', ' ');

function testResult(result) {
  const probes = h('table', { class: 'probes', id: 'permission-probes' },
    h('thead', {}, h('tr', {}, h('th', {}, t('Permission')), h('th', {}, t('Granted')), h('th', {}, t('Probe')), h('th', {}, t('Detail')))),
    h('tbody', {}, result.probes.map((p) => h('tr', { 'data-permission': p.permission, 'data-outcome': p.outcome },
      h('td', {}, h('code', {}, p.permission)),
      h('td', {}, p.granted ? 'yes' : 'no'),
      h('td', {}, p.outcome.replace('_', ' ')),
      h('td', {}, p.detail)))));
  return h('section', { class: 'test-result', id: 'test-result', 'data-ok': result.ok ? 'true' : 'false' },
    h('h3', {}, result.ok ? t('Connection works') : t('Connection has problems')),
    h('p', {}, t('Granted: {permissions}', { permissions: result.granted.join(', ') || t('nothing') })),
    result.missing.length
      ? h('p', { class: 'callout error', id: 'missing-permissions' }, t('Missing: {permissions}. Add them in Entra (API permissions) and grant admin consent.', { permissions: result.missing.join(', ') }))
      : null,
    probes,
    result.checks.length ? h('h3', {}, t('Mailbox checks')) : null,
    result.checks.length ? checksList(result.checks, 'mailbox-checks') : null,
    h('h3', {}, t('Inbox of {mailbox}', { mailbox: result.mailbox })),
    result.messages.length
      ? h('ul', { class: 'inbox-list', id: 'inbox-messages' }, result.messages.map((m) =>
        h('li', {}, h('strong', {}, m.subject || t('(no subject)')), ` — ${m.from}`, m.received ? h('span', { class: 'subtle' }, ` ${m.received.slice(0, 16).replace('T', ' ')}`) : null)))
      : h('p', { class: 'subtle', id: 'inbox-messages' }, t('The inbox is empty.')));
}

/** Renders the Incoming tab; `onChanged()` reloads the mailbox list after (dis)connecting. */
export function incomingPanel(mailbox, { onChanged }) {
  const panel = h('div', { class: 'incoming', id: 'incoming-panel' });
  const output = h('div', { class: 'incoming-output', id: 'incoming-output' });
  const showError = (e) => output.replaceChildren(diagnosisBox(e));

  // The last status shown; a call that answers `not_connected` (the refresh token revoked or
  // expired, the credential gone) switches the page to its sign-in state at once.
  let lastStatus = null;
  const run = async (button, work) => {
    button.disabled = true;
    try {
      await work();
    } catch (e) {
      const signInAgain = e.code === 'not_connected' || e.diagnosis?.code === 'grant_revoked';
      if (signInAgain && lastStatus) {
        render(lastStatus, { signInAgain: e });
      } else {
        showError(e);
      }
    } finally {
      button.disabled = false;
    }
  };

  const testButton = () => {
    const b = h('button', { class: 'button', id: 'test-connection' }, t('Test connection'));
    b.addEventListener('click', () => run(b, async () => {
      output.replaceChildren(h('p', { class: 'subtle' }, t('Testing…')));
      output.replaceChildren(testResult(await backend.testConnection(mailbox.id)));
    }));
    return b;
  };

  const disconnectButton = () => {
    const b = h('button', { class: 'button', id: 'disconnect' }, t('Disconnect'));
    b.addEventListener('click', () => run(b, async () => {
      await backend.disconnectMailbox(mailbox.id);
      toast(t('Mailbox "{name}" disconnected.', { name: mailbox.name }));
      await onChanged();
    }));
    return b;
  };

  const authorizeFlow = () => {
    const warning = h('p', { class: 'callout warning', id: 'authorize-warning' },
      mailbox.shared_mailbox
        ? t('The account that signs in must have Full Access to {mailbox}; that shared mailbox\'s inbox will be processed and its mail turned into tickets.', { mailbox: mailbox.shared_mailbox })
        : mailbox.settings?.expected_account
          ? t('The inbox of {account} will be processed: its mail is turned into tickets and moved. Only {account} can complete this sign-in.', { account: mailbox.settings.expected_account })
          : t('The inbox of the account that signs in will be processed: its mail is turned into tickets and moved. Sign in with the support mailbox, not your own account.'));
    const b = h('button', { class: 'button primary', id: 'authorize' }, t('Authorize'));
    const waiting = h('div', { class: 'authorize-waiting', id: 'authorize-waiting', hidden: true });
    b.addEventListener('click', () => run(b, async () => {
      output.replaceChildren();
      const started = await backend.authorizeStart(mailbox.id);
      const url = h('input', { id: 'authorize-url', readonly: true, value: started.url, class: 'url-box' });
      const copy = h('button', { class: 'button', id: 'copy-authorize-url', type: 'button' }, t('Copy'));
      copy.addEventListener('click', async () => {
        url.select();
        try { await navigator.clipboard.writeText(started.url); toast(t('Sign-in link copied.')); } catch { document.execCommand('copy'); }
      });
      const cancel = h('button', { class: 'button', id: 'authorize-cancel', type: 'button' }, t('Cancel'));
      cancel.addEventListener('click', () => backend.authorizeCancel(mailbox.id).catch(showError));
      waiting.replaceChildren(
        h('p', { id: 'authorize-status' }, started.browser_opened
          ? t('Your browser opened the Microsoft sign-in page. Finish the sign-in there; this page updates by itself.')
          : t('Open this link in a browser and sign in; this page updates by itself.')),
        h('div', { class: 'url-row' }, url, copy, cancel),
        h('p', { class: 'subtle' }, t('Mailroom listens on {uri} (127.0.0.1 only) for the redirect. Register http://localhost as the redirect URI.', { uri: started.redirect_uri })));
      waiting.hidden = false;
      try {
        const connection = await backend.authorizeWait(mailbox.id);
        toast(t('Connected as {account}.', { account: connection.account }));
        waiting.hidden = true;
        await onChanged();
      } catch (e) {
        waiting.hidden = true;
        showError(e);
      }
    }));
    return [warning, h('div', { class: 'actions' }, b), waiting];
  };

  const connectFlow = () => {
    const b = h('button', { class: 'button primary', id: 'connect' }, t('Connect'));
    b.addEventListener('click', () => run(b, async () => {
      output.replaceChildren(h('p', { class: 'subtle' }, t('Requesting an app-only token and checking the inbox…')));
      const connection = await backend.connectAppOnly(mailbox.id);
      toast(t('Connected to {account}.', { account: connection.account }));
      await onChanged();
    }));
    return [h('p', { class: 'subtle' }, t('Connect first: Mailroom requests an app-only token and reads the inbox of {address}. Create a subscription afterwards so Microsoft Graph notifies Mailroom of new mail.', { address: mailbox.mailbox_address })), h('div', { class: 'actions' }, b)];
  };

  // Webhooks: the Graph subscription (details, Create / Cancel, recent events).
  const subscriptionSection = () => {
    const section = h('section', { class: 'subscription', id: 'subscription' });
    const show = (info) => {
      const sub = info.subscription;
      const rows = sub
        ? [
          [t('Subscription'), sub.subscription_id, 'subscription-id'],
          [t('Resource'), sub.resource, 'subscription-resource'],
          [t('Expires'), sub.expires_at.slice(0, 16).replace('T', ' ') + t(' UTC'), 'subscription-expiry'],
          [t('Last notification'), sub.last_notification_at ? sub.last_notification_at.slice(0, 19).replace('T', ' ') + t(' UTC') : t('none yet'), 'subscription-last'],
          [t('Renewals'), String(sub.renewals), 'subscription-renewals'],
        ]
        : [];
      const create = h('button', { class: 'button primary', id: 'subscription-create' }, sub ? t('Recreate subscription') : t('Create subscription'));
      create.addEventListener('click', () => run(create, async () => {
        show(await backend.subscriptionCreate(mailbox.id));
        toast(t('Subscription created: new mail is processed as soon as Graph notifies Mailroom.'));
      }));
      const cancel = h('button', { class: 'button', id: 'subscription-cancel', disabled: !sub }, t('Cancel subscription'));
      cancel.addEventListener('click', () => run(cancel, async () => {
        show(await backend.subscriptionCancel(mailbox.id));
        toast(t('Subscription cancelled; the fallback scan keeps running.'));
      }));
      fill(section,
        h('h3', { id: 'subscription-status', 'data-active': sub ? 'true' : 'false' }, sub ? t('Subscription active') : t('No subscription')),
        h('p', { class: 'subtle' }, t('Notifications go to {url}', { url: info.notification_url })),
        sub ? h('dl', { class: 'subscription-details' }, ...rows.flatMap(([k, v, id]) => [h('dt', {}, k), h('dd', { id }, v)])) : null,
        h('div', { class: 'actions' }, create, cancel),
        info.events.length
          ? h('details', { class: 'subscription-events' }, h('summary', {}, t('Subscription events')),
            h('ul', { id: 'subscription-events' }, ...info.events.map((e) =>
              h('li', { 'data-kind': e.kind }, `${e.at.slice(0, 19).replace('T', ' ')} ${e.kind}: ${e.detail}`))))
          : null);
    };
    // The engine may still be creating the subscription (it starts in the background): while
    // the section shows none (or the receiver is not up yet), look again every 2 s for a minute.
    let tries = 0;
    const load = () => backend.subscriptionShow(mailbox.id).then((info) => {
      show(info);
      if (!info.subscription && section.isConnected && ++tries < 30) setTimeout(load, 2000);
    }).catch((e) => {
      section.replaceChildren(diagnosisBox(e));
      if (e.code === 'not_configured' && ++tries < 30) setTimeout(() => { if (section.isConnected) load(); }, 2000);
    });
    load();
    return section;
  };

  const pasteDiagnosis = () => {
    const text = h('textarea', { id: 'diagnose-text', rows: 2, placeholder: verbatim('AADSTS50011: The redirect URI … does not match …') });
    const b = h('button', { class: 'button', id: 'diagnose', type: 'button' }, t('Explain'));
    b.addEventListener('click', () => run(b, async () => {
      const d = await backend.diagnoseErrorText(text.value);
      output.replaceChildren(d
        ? diagnosisBox({ code: 'diagnosis', diagnosis: d })
        : h('p', { class: 'subtle', id: 'diagnosis' }, t('No AADSTS code found in that text.')));
    }));
    return h('details', { class: 'paste-diagnosis' },
      h('summary', {}, t('The Microsoft page showed an error?')),
      h('p', { class: 'subtle' }, t('Paste the message (it starts with AADSTS) to get the cause and the fix.')),
      text, b);
  };

  // Replies: the outcome (HaloPSA action type) of the actions added for inbound replies,
  // picked from the PSA's own Outcome list and stored by id. Without a choice the default
  // matched by name is used; if the PSA has none of the usual names, replies fail with
  // outcome_not_configured until one is picked here.
  const replyOutcomeSection = () => {
    const section = h('section', { class: 'reply-outcome', id: 'reply-outcome' },
      h('h3', {}, t('Replies')), h('p', { class: 'subtle' }, t('Loading the PSA’s outcomes…')));
    const show = (setting) => {
      const def = setting.psa.default;
      const select = h('select', { id: 'reply-outcome-select' },
        h('option', { value: '' }, def ? t('Default: {name}', { name: def.name }) : t('Choose an outcome…')),
        ...setting.psa.outcomes.map((o) => h('option', { value: String(o.id) },
          `${o.name}${o.private ? t(' (private)') : ''}`)));
      select.value = setting.outcome_id == null ? '' : String(setting.outcome_id);
      const save = h('button', { class: 'button', id: 'reply-outcome-save', type: 'button' }, t('Save'));
      save.addEventListener('click', () => run(save, async () => {
        const id = select.value === '' ? null : Number(select.value);
        show(await backend.psaReplyOutcomeSet(mailbox.id, id));
        toast(t('Outcome for replies saved.'));
      }));
      // Who sees the reply's action: by default what the outcome says (a private note stays
      // private), or always visible / always hidden.
      const chosen = setting.psa.outcomes.find((o) => o.id === setting.outcome_id) ?? def;
      const follow = chosen
        ? (chosen.private
          ? t('As the outcome says (hidden: {name} is private)', { name: chosen.name })
          : t('As the outcome says (visible: {name} is not private)', { name: chosen.name }))
        : t('As the outcome says');
      const visibility = h('select', { id: 'reply-visibility-select', 'aria-label': t('Visible to the end user') },
        h('option', { value: 'follow_outcome' }, follow),
        h('option', { value: 'visible' }, t('Always visible to the end user')),
        h('option', { value: 'hidden' }, t('Always hidden from the end user')));
      visibility.value = setting.visibility ?? 'follow_outcome';
      visibility.addEventListener('change', () => run(visibility, async () => {
        show(await backend.psaReplyVisibilitySet(mailbox.id, visibility.value));
        toast(t('Visibility of replies saved.'));
      }));
      const missing = setting.outcome_id == null && !def;
      const gone = setting.outcome_id != null && !setting.psa.outcomes.some((o) => o.id === setting.outcome_id);
      fill(section,
        h('h3', {}, t('Replies')),
        h('label', { for: 'reply-outcome-select' }, t('Outcome of the action added to a ticket for each reply')),
        h('div', { class: 'actions' }, select, save),
        h('label', { for: 'reply-visibility-select' }, t('Visible to the end user')),
        h('div', { class: 'actions' }, visibility),
        missing || gone
          ? h('p', { class: 'callout warning', id: 'reply-outcome-warning', 'data-code': missing ? 'outcome_not_configured' : 'outcome_not_found' },
            missing
              ? t('HaloPSA has none of the usual outcomes for inbound email (Email Received, Private Note, …): choose one, or replies to tickets fail.')
              : t('The chosen outcome ({name}) no longer exists in HaloPSA: choose another, or replies to tickets fail.', { name: setting.outcome_name || setting.outcome_id }))
          : null);
    };
    backend.psaReplyOutcomeGet(mailbox.id).then(show).catch((e) => section.replaceChildren(
      h('h3', {}, t('Replies')),
      h('p', { class: 'callout warning', id: 'reply-outcome-warning', 'data-code': e.code },
        t('The PSA’s outcomes could not be loaded: {error}', { error: e.message }))));
    return section;
  };

  // What the guides only advise, checked: a Webhooks mailbox names a canary its application must
  // not reach; a scan mailbox of a user's own inbox names the account that must sign in.
  const safetySection = (m) => {
    const webhook = m.method !== 'scan';
    if (!webhook && m.shared_mailbox) return null;
    const key = webhook ? 'canary_address' : 'expected_account';
    const input = h('input', { type: 'email', id: 'safety-address', value: m.settings?.[key] ?? '', placeholder: webhook ? 'ceo@contoso.com' : 'support@contoso.com' });
    const save = h('button', { class: 'button', type: 'button', id: 'safety-save' }, t('Save'));
    save.addEventListener('click', () => run(save, async () => {
      const value = input.value.trim() || null;
      if (webhook) await backend.mailboxCanarySet(mailbox.id, value);
      else await backend.mailboxSignInAsSet(mailbox.id, value);
      toast(t('Saved.'));
      await onChanged();
    }));
    // The last findings (Test connection, Check now, the daily re-check) and when they ran.
    const findings = h('div', { class: 'safety-findings', id: 'safety-findings' });
    const showFindings = (found) => {
      const when = found.checked_at
        ? t('Last checked {time} UTC · next check {next} UTC', { time: minute(found.checked_at), next: minute(found.next_check_at) })
        : t('Not checked yet: Check now runs the checks, and Mailroom runs them again every day.');
      findings.replaceChildren(
        h('p', { class: 'subtle', id: 'safety-checked-at', 'data-checked': found.checked_at ? 'true' : 'false' }, when),
        ...(found.checks.length ? [checksList(found.checks, 'safety-check-list')] : []));
    };
    const checkNow = h('button', { class: 'button', type: 'button', id: 'safety-check-now' }, t('Check now'));
    checkNow.addEventListener('click', () => run(checkNow, async () => {
      showFindings(await backend.mailboxCheckNow(mailbox.id));
    }));
    backend.mailboxChecks(mailbox.id).then(showFindings).catch(showError);
    return h('section', { class: 'safety', id: 'safety-checks' },
      h('header', { class: 'section-head' },
        h('h3', {}, t('Safety checks')),
        m.connected_account ? checkNow : null),
      h('label', { class: 'field' },
        h('span', { class: 'field-label' }, webhook ? t('A mailbox this application must not reach') : t('Only this account may sign in')),
        h('div', { class: 'form-actions' }, input, save),
        h('span', { class: 'field-hint' }, webhook
          ? t('Mailroom tries to read it with the application\'s token: if it can, the application can read every mailbox in your tenant, and the fix is shown. With User.Read.All it samples other mailboxes when none is named.')
          : t('Authorize pre-fills it and refuses a sign-in by any other account, so nobody\'s own inbox is processed by mistake.'))),
      findings);
  };

  const render = (status, { signInAgain = null } = {}) => {
    lastStatus = status;
    const m = status.mailbox;
    // The engine found the sign-in revoked: the page is in its sign-in state from the start.
    if (!signInAgain && m.sign_in_required) {
      signInAgain = { code: 'sign_in_required', message: m.sign_in_required, complete: true };
    }
    const connected = Boolean(m.connected_account) && !signInAgain;
    const head = h('header', { class: 'connection-head' },
      h('h2', { id: 'connection-status', 'data-connected': connected ? 'true' : 'false' },
        connected ? t('Connected as {account}', { account: m.connected_account }) : t('Not connected')),
      connected && m.connected_at ? h('p', { class: 'subtle' }, t('Since {time} UTC', { time: m.connected_at.slice(0, 16).replace('T', ' ') })) : null);
    const items = [head];
    if (signInAgain) {
      const d = signInAgain.diagnosis;
      items.push(h('p', { class: 'callout error', id: 'sign-in-again', 'data-code': d?.code ?? signInAgain.code },
        signInAgain.complete ? t('Mailroom stopped reading this mailbox: {reason}', { reason: signInAgain.message })
          : `${d ? `${d.cause[0].toUpperCase()}${d.cause.slice(1)}.` : signInAgain.message} ${m.method === 'scan' ? t('Sign in again with Authorize below.') : t('Connect again below.')}`));
    }
    if (status.warning) {
      items.push(h('p', { class: 'callout warning', id: 'credential-warning', 'data-code': status.warning.code }, status.warning.message));
    }
    items.push(details(m, connected));
    items.push(h('p', { class: 'subtle', id: 'needed-permissions' },
      t('{type} permissions needed: {permissions}', { type: m.method === 'scan' ? verbatim('Delegated') : verbatim('Application'), permissions: status.needed_permissions.join(', ') })));
    if (connected) {
      items.push(h('div', { class: 'actions' }, testButton(), disconnectButton()));
      if (m.method !== 'scan') items.push(subscriptionSection());
    } else if (m.method === 'scan') {
      items.push(...authorizeFlow(), pasteDiagnosis());
    } else {
      items.push(...connectFlow());
    }
    items.push(replyOutcomeSection());
    const safety = safetySection(m);
    if (safety) items.push(safety);
    items.push(output);
    panel.replaceChildren(...items);
  };

  backend.mailboxStatus(mailbox.id).then(render).catch((e) => panel.replaceChildren(diagnosisBox(e)));
  return panel;
}
