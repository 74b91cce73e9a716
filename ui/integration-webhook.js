// The Integration area's last three steps (guide section 4 and its test): the certificate
// HaloPSA signs its webhook with, the webhook itself with its deliveries as Mailroom received
// them, and the end-to-end test (crates/engine src/integration/{certificate,webhook,
// end_to_end}.rs, src/psa_webhook).

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { N_, locale, t, verbatim } from './i18n.js';
import { copyable, createForMe, setting, stepCard } from './wizard.js';

const CERTIFICATES_PATH = verbatim('Configuration > Advanced Settings > Certificates');
const WEBHOOKS_PATH = verbatim('Configuration > Integrations > Webhooks');

const date = (iso) => new Date(iso).toLocaleDateString(locale(), { year: 'numeric', month: 'short', day: 'numeric' });
const time = (iso) => new Date(iso).toLocaleString(locale());

/** The kept certificate: subject, thumbprint, validity, and its warning. */
function certificateDetails(view) {
  const c = view.certificate;
  if (!c) return h('p', { class: 'subtle', id: 'certificate-none' }, t('No certificate yet.'));
  return h('div', { id: 'certificate-details' },
    view.warning ? h('div', { class: 'callout warning', id: 'certificate-warning' }, view.warning) : null,
    h('dl', { class: 'details' },
      h('dt', {}, t('Subject')), h('dd', {}, c.subject),
      h('dt', {}, t('Thumbprint')), h('dd', {}, h('code', { id: 'certificate-thumbprint' }, c.thumbprint)),
      h('dt', {}, t('Valid')), h('dd', {}, `${date(c.not_before)} – ${date(c.not_after)}`),
      h('dt', {}, t('Origin')), h('dd', {}, c.origin === 'generated' ? t('Generated {time}', { time: time(c.saved_at) }) : t('Imported {time}', { time: time(c.saved_at) })),
      h('dt', {}, t('Private key')), h('dd', {}, t('In the OS keyring only'))));
}

/** Step 6: the certificate — generate or import; upload to HaloPSA. */
export function certificateCard(step, connected) {
  const body = h('div', {}, h('p', { class: 'subtle' }, t('Loading…')));
  const once = h('div', { id: 'certificate-once' });
  let card;
  const load = async () => {
    try {
      const view = await backend.integrationCertificateGet();
      const generate = h('button', { type: 'button', class: 'button primary', id: 'certificate-generate' },
        view.certificate ? t('Generate a new certificate…') : t('Generate certificate…'));
      generate.addEventListener('click', async () => {
        if (view.certificate && !window.confirm(t('Replace the certificate? HaloPSA keeps signing with the old one until the new one is uploaded.'))) return;
        generate.disabled = true;
        try {
          const made = await backend.integrationCertificateGenerate();
          if (!made) return;
          // The password is shown this once: it is not kept anywhere.
          fill(once, h('div', { class: 'callout', id: 'certificate-password' },
            h('p', {}, t('Saved to '), h('code', {}, made.path), '. Its password — shown only now:'),
            copyable(made.password, 'copy-certificate-password')));
          toast(t('Certificate generated.'));
          load();
        } catch (error) {
          toast(error.message, 'error');
        } finally {
          generate.disabled = false;
        }
      });
      const password = h('input', { id: 'certificate-import-password', type: 'password', autocomplete: 'off', placeholder: t('PFX password') });
      const importButton = h('button', { type: 'button', class: 'button', id: 'certificate-import' }, t('Import PFX…'));
      importButton.addEventListener('click', async () => {
        importButton.disabled = true;
        try {
          const imported = await backend.integrationCertificateImport(password.value);
          if (imported) {
            password.value = '';
            fill(once);
            toast(t('Certificate imported.'));
            load();
          }
        } catch (error) {
          toast(error.message, 'error');
        } finally {
          importButton.disabled = false;
        }
      });
      fill(body,
        h('div', { class: 'form-actions' }, generate),
        once,
        certificateDetails(view),
        h('details', { class: 'import-pfx' }, h('summary', {}, t('Use a certificate you have')),
          h('div', { class: 'file-pick' }, password, importButton)),
        view.certificate ? createForMe('certificate-upload',
          t('Uploads it to HaloPSA as "{name}" (needs the optional admin permission).', { name: view.psa_name }),
          backend.integrationCertificateUpload, () => card, t('The certificate is in HaloPSA.')) : null,
        h('p', {}, t('Or by hand: in HaloPSA, go to '), h('strong', {}, CERTIFICATES_PATH), t(' and click '), h('strong', {}, verbatim('New')), ':'),
        h('ul', { class: 'settings' },
          setting(verbatim('Name'), copyable(view.psa_name, 'copy-certificate-name')),
          setting(verbatim('Pfx'), t('the file you saved with Generate certificate')),
          setting(verbatim('Password'), t('the password shown with it'))));
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
    }
  };
  card = stepCard(6, step, {
    bodyLabel: t('Certificate'),
    intro: t('HaloPSA signs every webhook request with it; Mailroom refuses what it did not sign.'),
    body,
    onCheck: connected ? async () => (await backend.integrationCheck('certificate'))[0] : null,
  });
  load();
  return card.card;
}

const VERIFICATION = {
  verified: N_('Verified'),
  replay: N_('Replay (not applied)'),
  stale: N_('Too old'),
  forged: N_('Forged'),
  unsigned: N_('Unsigned'),
  wrong_certificate: N_('Other certificate'),
  no_certificate: N_('No certificate'),
  malformed: N_('Malformed'),
};

/** The newest deliveries as Mailroom received them. */
function deliveriesTable(deliveries) {
  if (!deliveries.length) {
    return h('p', { class: 'subtle', id: 'psa-deliveries-empty' }, t('No delivery received yet. Run the end-to-end test, or log a ticket in HaloPSA.'));
  }
  const detail = h('div', { class: 'delivery-detail', id: 'psa-delivery-detail' });
  const table = h('table', { class: 'log-table', id: 'psa-deliveries' },
    h('thead', {}, h('tr', {}, [t('Received'), t('Event'), t('Ticket'), t('Answer'), t('Verification')].map((label) => h('th', {}, label)))),
    h('tbody', {}, deliveries.map((d) => {
      const row = h('tr', { class: 'log-row', 'data-verification': d.verification, 'data-id': String(d.id) },
        h('td', {}, time(d.received_at)),
        h('td', {}, d.event ?? '—'),
        h('td', {}, d.ticket_id ? String(d.ticket_id) : '—'),
        h('td', {}, String(d.status)),
        h('td', {}, h('span', { class: `pill ${d.verification === 'verified' ? 'pill-ok' : (d.verification === 'replay' ? '' : 'pill-failed')}` }, VERIFICATION[d.verification] ? t(VERIFICATION[d.verification]) : d.verification)));
      row.addEventListener('click', () => fill(detail,
        h('h3', {}, t('Delivery #{id}', { id: d.id })),
        h('p', {}, d.detail),
        h('h4', {}, t('Headers')),
        h('pre', { class: 'log-pre' }, d.headers.map(([k, v]) => `${k}: ${v}`).join('\n')),
        h('h4', {}, t('Body')),
        h('pre', { class: 'log-pre' }, d.body)));
      return row;
    })));
  return h('div', {}, table, detail);
}

/** Step 7: the webhook — HaloPSA posts its ticket events to Mailroom. */
export function webhookCard(step, connected) {
  const body = h('div', {}, h('p', { class: 'subtle' }, t('Loading…')));
  let card;
  const load = async () => {
    try {
      const view = await backend.integrationWebhookGet();
      const events = [
        [verbatim('New Ticket Logged'), view.settings.events.new_ticket],
        [verbatim('Ticket Status Changed'), view.settings.events.status_changed],
        [t('Ticket Updated (Field: Client, Value changed, To any value)'), view.settings.events.ticket_updated],
        [t('Action Added by agent (private note; email to the customer)'), view.settings.events.action_added],
      ];
      fill(body,
        createForMe('webhook-create',
          t('Creates (or corrects) the webhook: signed with Mailroom\'s certificate, with the events below. Upload the certificate first.'),
          async () => { const r = await backend.integrationWebhookCreate(); load(); return r; }, () => card,
          t('The webhook is in HaloPSA. Run the end-to-end test to see a delivery arrive.')),
        h('p', {}, t('Or by hand: in HaloPSA, go to '), h('strong', {}, WEBHOOKS_PATH), t(' and click '), h('strong', {}, verbatim('New')), ':'),
        h('ul', { class: 'settings' },
          setting(verbatim('WebHook name'), copyable(view.name, 'copy-webhook-name')),
          setting(verbatim('Payload URL'), copyable(view.url, 'copy-webhook-url')),
          setting(verbatim('Authentication'), verbatim('Sign Request Body with a X.509 Certificate')),
          setting(verbatim('Certificate'), verbatim('Mailroom')),
          setting(verbatim('Payload Type'), verbatim('Small object with key fields only')),
          setting(verbatim('Events'), h('ul', { class: 'plain' }, events.map(([name, no]) => h('li', {}, t('{name} (event {no})', { name, no })))))),
        h('h3', {}, t('Deliveries received')),
        deliveriesTable(view.deliveries));
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
    }
  };
  card = stepCard(7, step, {
    bodyLabel: t('What to do in HaloPSA'),
    intro: t('HaloPSA tells Mailroom about new, closed and moved tickets and agents\' actions.'),
    body,
    onCheck: connected ? async () => { const r = (await backend.integrationCheck('webhook'))[0]; load(); return r; } : null,
  });
  load();
  return card.card;
}

/** Step 8: the end-to-end test. */
export function testCard(step, connected) {
  const card = stepCard(8, step, {
    bodyLabel: t('What the test does'),
    intro: t('Follows a test ticket through every link of the chain, then deletes it.'),
    body: h('ol', { class: 'steps' },
      h('li', {}, t('Logs a test ticket in HaloPSA.')),
      h('li', {}, t('Waits for HaloPSA\'s webhook to reach Mailroom and verifies its signature.')),
      h('li', {}, t('Reads HaloPSA\'s own delivery log: the response must be 200.')),
      h('li', {}, t('Opens the ticket tab with a secure parameter, as HaloPSA would.')),
      h('li', {}, t('Deletes the test ticket.'))),
    checkLabel: t('Run the test'),
    onCheck: connected ? () => backend.integrationTestRun() : null,
  });
  return card.card;
}
