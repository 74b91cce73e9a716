// The only module that talks to the Rust side. Every other module imports from here, so the
// transport (Tauri's IPC today) can change in one place.
//
// Errors from commands arrive as {code, message}; `code` is one of a closed set
// (see ErrorCode in crates/engine) and is what callers switch on.

import { t } from './i18n.js';

const tauri = window.__TAURI__;

export class BackendError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function call(command, args = {}) {
  if (!tauri) {
    throw new BackendError('internal', t('Mailroom must run inside its desktop window.'));
  }
  try {
    return await tauri.core.invoke(command, args);
  } catch (error) {
    if (error && typeof error === 'object' && 'code' in error) {
      throw new BackendError(error.code, error.message);
    }
    throw new BackendError('internal', String(error));
  }
}

export const appInfo = () => call('app_info');
// The interface language ('en', 'de'), kept in the settings.
export const uiLanguageGet = () => call('ui_language_get');
export const uiLanguageSet = (language) => call('ui_language_set', { language });
export const listMailboxes = () => call('list_mailboxes');
export const addMailbox = (setup) => call('add_mailbox', { setup });
export const removeMailbox = (id) => call('remove_mailbox', { id });
export const mailboxCanarySet = (mailboxId, address) => call('mailbox_canary_set', { mailboxId, address });
export const mailboxChecks = (mailboxId) => call('mailbox_checks', { mailboxId });
export const mailboxCheckNow = (mailboxId) => call('mailbox_check_now', { mailboxId });
export const mailboxSignInAsSet = (mailboxId, account) => call('mailbox_sign_in_as_set', { mailboxId, account });
export const sandboxInfo = () => call('sandbox_info');
export const sandboxSendTestEmail = () => call('sandbox_send_test_email');

// Inbound log, monitoring and the sync engine (ui/inbound-log.js).
export const engineRefresh = () => call('engine_refresh');
export const engineStatus = () => call('engine_status');
export const inboundLog = (query) => call('inbound_log', { query });
export const dashboard = () => call('dashboard');
export const retentionGet = () => call('retention_get');
// The database this workstation opens (ui/shared-database.js).
export const consoleGet = () => call('console_get');
export const consoleTest = (change) => call('console_test', { change });
export const consoleSet = (change) => call('console_set', { change });
export const consoleProcesses = () => call('console_processes');
export const retentionSet = (settings) => call('retention_set', { settings });
export const retentionPruneNow = () => call('retention_prune_now');
/** Opens the native save dialog; resolves to {path, rows}, or null when cancelled. */
export const inboundExportCsv = (query) => call('inbound_export_csv', { query });
export const inboundAttempts = (emailId) => call('inbound_attempts', { emailId });
export const inboundReprocess = (emailId) => call('inbound_reprocess', { emailId });
export const inboundImportNow = (mailboxId) => call('inbound_import_now', { mailboxId });
export const subscriptionShow = (mailboxId) => call('subscription_show', { mailboxId });
export const subscriptionCreate = (mailboxId) => call('subscription_create', { mailboxId });
export const subscriptionCancel = (mailboxId) => call('subscription_cancel', { mailboxId });
export const subscriptionEventsAll = () => call('subscription_events_all');
// Error notifications (ui/notifications.js).
export const notificationsGet = () => call('notifications_get');
export const notificationsSet = (settings) => call('notifications_set', { settings });
export const notificationsAgents = () => call('notifications_agents');
export const notificationsRecent = () => call('notifications_recent');
export const notificationsTest = () => call('notifications_test');
// Contact imports (ui/contact-imports.js).
export const contactsSetup = (mailboxId) => call('contacts_setup', { mailboxId });
export const contactsSettingsSet = (settings) => call('contacts_settings_set', { settings });
export const contactsScheduleSet = (mailboxId, schedule) => call('contacts_schedule_set', { mailboxId, schedule });
export const contactsPreview = (mailboxId) => call('contacts_preview', { mailboxId });
export const contactsImportStart = (mailboxId) => call('contacts_import_start', { mailboxId });
export const contactsImportCancel = (mailboxId) => call('contacts_import_cancel', { mailboxId });
export const contactsRuns = (mailboxId = null) => call('contacts_runs', { mailboxId });
export const contactsRunRows = (runId, outcome = null) => call('contacts_run_rows', { runId, outcome });
// Outgoing mail (ui/outbound-log.js).
export const outboundList = (mailboxId = null) => call('outbound_list', { mailboxId });
export const outboundAttempts = (id) => call('outbound_attempts', { id });
export const outboundResend = (id) => call('outbound_resend', { id });
export const outboundDefaultGet = () => call('outbound_default_get');
export const outboundDefaultSet = (mailboxId) => call('outbound_default_set', { mailboxId });
export const psaConnectionGet = () => call('psa_connection_get');
// How PSA writes are batched: {max_records, max_wait_ms}; applied by the running engine at once.
export const psaBatchingGet = () => call('psa_batching_get');
export const psaBatchingSet = (batching) => call('psa_batching_set', { batching });
export const psaConnectionSet = ({ baseUrl, clientId, clientSecret, tenant }) =>
  call('psa_connection_set', { baseUrl, clientId, clientSecret, tenant });
// The outcome of actions added for replies, chosen from the PSA's Outcome list
// ({outcome_id, outcome_name, psa: {outcomes: [{id, name, button, private}], default}}).
export const psaOutcomes = () => call('psa_outcomes');
export const psaReplyOutcomeGet = (mailboxId) => call('psa_reply_outcome_get', { mailboxId });
export const psaReplyOutcomeSet = (mailboxId, outcomeId) =>
  call('psa_reply_outcome_set', { mailboxId, outcomeId });
export const psaTest = () => call('psa_test');
// The integration wizard (ui/integration.js): steps with their kept results; check one or all.
export const integrationStatus = () => call('integration_status');
export const integrationCheck = (step = null) => call('integration_check', { step });
// {settings: {default_ticket_type_id, tab_ticket_type_ids}, ticket_types: [{id, name, agents_can_select}]}
export const integrationScopeGet = () => call('integration_scope_get');
export const integrationScopeSet = (settings) => call('integration_scope_set', { settings });
// {url, settings: {scheme} | null, rejections: [{at, reason, parameters}]}
export const integrationTabGet = () => call('integration_tab_get');
export const integrationTabSet = (secret, scheme) => call('integration_tab_set', { secret, scheme });
export const integrationTabCreate = () => call('integration_tab_create');
// {settings: {status_id}, statuses: [{id, name}]}
export const integrationResolveGet = () => call('integration_resolve_get');
export const integrationResolveSet = (statusId) => call('integration_resolve_set', { statusId });
export const integrationResolveCreate = () => call('integration_resolve_create');
export const integrationResolveCloseSet = (enabled, phrases) => call('integration_resolve_close_set', { enabled, phrases });
// Certificate, PSA webhook and end-to-end test steps (ui/integration-webhook.js). Generate and
// Import open the native save/open dialog from the backend; they resolve to null if cancelled.
export const integrationCertificateGet = () => call('integration_certificate_get');
export const integrationCertificateGenerate = () => call('integration_certificate_generate');
export const integrationCertificateImport = (password) => call('integration_certificate_import', { password });
export const integrationCertificateUpload = () => call('integration_certificate_upload');
export const integrationWebhookGet = () => call('integration_webhook_get');
export const integrationWebhookSettingsSet = (settings) => call('integration_webhook_settings_set', { settings });
export const integrationWebhookCreate = () => call('integration_webhook_create');
export const integrationTestRun = () => call('integration_test_run');
export const psaReplyVisibilitySet = (mailboxId, visibility) =>
  call('psa_reply_visibility_set', { mailboxId, visibility });
// Live engine events arrive in batches (arrays) over a Channel.
export function inboundSubscribe(onBatch) {
  if (!tauri) return Promise.reject(new BackendError('internal', t('Mailroom must run inside its desktop window.')));
  const channel = new tauri.core.Channel();
  channel.onmessage = onBatch;
  return call('inbound_subscribe', { onEvents: channel });
}

// Connecting a mailbox (ui/mailbox-incoming.js, ui/mailbox-form.js). Errors from these
// commands also carry `diagnosis` ({code, cause, fix}) for identity and Graph failures.
async function callConnect(command, args = {}) {
  if (!tauri) {
    throw new BackendError('internal', t('Mailroom must run inside its desktop window.'));
  }
  try {
    return await tauri.core.invoke(command, args);
  } catch (error) {
    if (error && typeof error === 'object' && 'code' in error) {
      const e = new BackendError(error.code, error.message);
      e.diagnosis = error.diagnosis ?? null;
      throw e;
    }
    throw new BackendError('internal', String(error));
  }
}
// A certificate mailbox imports the file last chosen with pfxChoose.
export const saveMailbox = (setup, { secretExpiresOn, pfxPassword } = {}) =>
  callConnect('save_mailbox', { setup, secretExpiresOn, pfxPassword });
export const mailboxStatus = (id) => callConnect('mailbox_status', { id });
export const authorizeStart = (id) => callConnect('authorize_start', { id });
export const authorizeWait = (id) => callConnect('authorize_wait', { id });
export const authorizeCancel = (id) => callConnect('authorize_cancel', { id });
export const connectAppOnly = (id) => callConnect('connect_app_only', { id });
export const testConnection = (id) => callConnect('test_connection', { id });
export const disconnectMailbox = (id) => callConnect('disconnect_mailbox', { id });
export const diagnoseErrorText = (text) => callConnect('diagnose_error_text', { text });
/** The native file picker for a PFX, opened by the backend, which keeps the chosen file;
 *  resolves to the path to show, or null when cancelled. */
export const pfxChoose = () => callConnect('pfx_choose');
export const webhookSettingsGet = () => call('webhook_settings_get');
export const webhookSettingsSet = (settings) => call('webhook_settings_set', { settings });
