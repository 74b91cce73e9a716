// Error notifications (Monitoring): which PSA agents get a digest of the problems Mailroom
// records, which problems, from which connected mailbox, how often, the desktop switch, a test
// digest, and the newest problems (crates/engine notifications.rs).

import * as backend from './backend.js';
import { fill, h, toast } from './dom.js';
import { N_, locale, t } from './i18n.js';

const KINDS = [
  ['email_failed', N_('An email failed after its last retry')],
  ['mailbox_disconnected', N_('A mailbox was disconnected or its consent revoked')],
  ['subscription_lost', N_('A webhook mailbox\'s Graph subscription was lost')],
  ['credential_expiring', N_('A mailbox\'s secret or certificate expires soon')],
  ['psa_unreachable', N_('HaloPSA cannot be reached')],
  ['contacts_failed', N_('A contact import failed')],
  ['mailbox_check_failed', N_('A mailbox safety check turned red')],
];

/** The problems recorded lately. */
function recentList(items) {
  if (!items.length) return h('p', { class: 'subtle', id: 'problems-empty' }, t('No problem recorded.'));
  return h('ul', { class: 'checks', id: 'problems' }, items.map((p) =>
    h('li', { class: 'check check-failed', 'data-kind': p.kind },
      h('span', { class: 'check-mark', 'aria-hidden': 'true' }, '!'),
      h('div', {},
        h('strong', {}, p.title), ' — ', p.detail,
        h('div', { class: 'check-fix' }, t('Fix: {fix}', { fix: p.fix })),
        h('div', { class: 'subtle' }, new Date(p.created_at).toLocaleString(locale()),
          p.digested_at ? t(' · emailed') : t(' · waiting for the next digest'))))));
}

/** Monitoring's *Error notifications* section. */
export function notificationsSection(mailboxes) {
  const body = h('div', {}, h('p', { class: 'subtle' }, t('Loading…')));
  const root = h('section', { class: 'notifications-section', id: 'monitoring-notifications' },
    h('h2', {}, t('Error notifications')),
    h('p', { class: 'subtle' }, t('Problems that need someone are shown on this desktop and emailed to the agents you choose, at most one digest per agent per interval.')),
    body);
  const load = async () => {
    let settings;
    let agents = [];
    let recent = [];
    try {
      settings = await backend.notificationsGet();
      recent = await backend.notificationsRecent();
    } catch (error) {
      fill(body, h('p', { class: 'error-text' }, error.message));
      return;
    }
    let agentsNote = null;
    try {
      agents = await backend.notificationsAgents();
    } catch (error) {
      agentsNote = h('p', { class: 'subtle' }, t('The PSA\'s agents cannot be read now: {error}', { error: error.message }));
    }
    // Agents chosen before stay listed even when the PSA cannot be read.
    for (const a of settings.agents) {
      if (!agents.some((x) => x.agent_id === a.agent_id)) agents.push(a);
    }
    const chosen = new Set(settings.agents.map((a) => a.agent_id));
    const agentBoxes = agents.map((a) => h('label', { class: 'choice' },
      h('input', { type: 'checkbox', name: 'notify-agent', value: String(a.agent_id), checked: chosen.has(a.agent_id) }),
      h('span', {}, `${a.name} <${a.email}>`)));
    const kindBoxes = KINDS.map(([id, label]) => h('label', { class: 'choice' },
      h('input', { type: 'checkbox', name: 'notify-kind', value: id, checked: settings.on[id] }),
      h('span', {}, t(label))));
    const from = h('select', { id: 'notify-from' },
      h('option', { value: '' }, t('Choose the sending mailbox')),
      mailboxes.map((m) => h('option', { value: m.id, selected: settings.from_mailbox_id === m.id }, m.name)));
    const minutes = h('input', { id: 'notify-minutes', type: 'number', min: '1', max: '1440', value: String(settings.digest_minutes) });
    const days = h('input', { id: 'notify-days', type: 'number', min: '1', max: '365', value: String(settings.on.expiring_days) });
    const desktop = h('input', { type: 'checkbox', id: 'notify-desktop', checked: settings.desktop });
    const form = h('form', { class: 'notify-form', id: 'notify-form' },
      h('fieldset', { class: 'choices', id: 'notify-agents' }, h('legend', {}, t('Agents who get the digest')),
        agentBoxes.length ? agentBoxes : h('p', { class: 'subtle' }, t('No agent with an email address.')), agentsNote),
      h('fieldset', { class: 'choices', id: 'notify-kinds' }, h('legend', {}, t('Problems to tell')), kindBoxes),
      h('label', { class: 'field' }, h('span', {}, t('Sent from')), from),
      h('label', { class: 'field' }, h('span', {}, t('At most one digest per agent every (minutes)')), minutes),
      h('label', { class: 'field' }, h('span', {}, t('Warn about credentials expiring within (days)')), days),
      h('label', { class: 'choice' }, desktop, h('span', {}, t('Show desktop notifications'))),
      h('div', { class: 'form-actions' },
        h('button', { class: 'button primary', type: 'submit', id: 'notify-save' }, t('Save')),
        h('button', { class: 'button', type: 'button', id: 'notify-test' }, t('Send a test digest'))));
    const collect = () => {
      const on = { ...settings.on };
      for (const [id] of KINDS) on[id] = form.querySelector(`input[name="notify-kind"][value="${id}"]`).checked;
      on.expiring_days = Number(days.value);
      const picked = [...form.querySelectorAll('input[name="notify-agent"]:checked')].map((i) => Number(i.value));
      return {
        agents: agents.filter((a) => picked.includes(a.agent_id)),
        from_mailbox_id: from.value || null,
        on,
        digest_minutes: Number(minutes.value),
        desktop: desktop.checked,
      };
    };
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        await backend.notificationsSet(collect());
        toast(t('Notification settings saved.'));
      } catch (error) {
        toast(error.message, 'error');
      }
    });
    form.querySelector('#notify-test').addEventListener('click', async (e) => {
      e.target.disabled = true;
      try {
        await backend.notificationsSet(collect());
        const sent = await backend.notificationsTest();
        const ok = sent.every((m) => m.status === 'sent');
        toast(ok ? t('Test digest sent to {n} agent(s).', { n: sent.length })
          : t('Not sent: {reason}', { reason: sent.find((m) => m.status !== 'sent')?.error_message ?? '' }), ok ? 'info' : 'error');
      } catch (error) {
        toast(error.message, 'error');
      } finally {
        e.target.disabled = false;
      }
    });
    fill(body, form, h('h3', {}, t('Recent problems')), recentList(recent));
  };
  load();
  return root;
}
