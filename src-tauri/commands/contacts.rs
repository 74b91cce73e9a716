//! Contact imports (the mailbox's *Contact imports* tab and Monitoring): the field mappings and
//! import settings, each mailbox's schedule, the preview, starting and cancelling an import
//! in the engine (its progress arrives as engine events), and the import log
//! (`mailroom_engine::contacts`).

use mailroom_engine::contacts::fields::{ContactField, PsaUserField, CONTACT_FIELDS};
use mailroom_engine::contacts::imports::ContactSchedule;
use mailroom_engine::contacts::{ImportSettings, Preview};
use mailroom_engine::CoreError;
use mailroom_store::contacts::{ContactOutcome, ImportRow, ImportRun, ImportTrigger};
use serde::Serialize;
use tauri::State;

use super::inbound::InboundState;
use super::UiResult;
use crate::AppState;

/// What the tab shows before anything runs.
#[derive(Serialize)]
pub struct ContactsSetup {
    pub settings: ImportSettings,
    pub outlook_fields: &'static [ContactField],
    pub psa_fields: Vec<PsaUserField>,
    /// HaloPSA's sites (id, name, email domain), for the default site; empty with
    /// `sites_error` when HaloPSA could not be read.
    pub sites: Vec<SiteChoice>,
    pub sites_error: Option<String>,
    pub schedule: ContactSchedule,
    /// Whether an import of this mailbox runs now.
    pub running: bool,
}

#[derive(Serialize)]
pub struct SiteChoice {
    pub id: i64,
    pub name: String,
    pub emaildomain: Option<String>,
}

#[tauri::command]
pub async fn contacts_setup(
    state: State<'_, AppState>,
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<ContactsSetup> {
    let core = &state.core;
    let (sites, sites_error) = match core.psa_client().await {
        Ok(psa) => match psa.list_sites(None).await {
            Ok(sites) => (
                sites
                    .into_iter()
                    .filter(|s| s.inactive != Some(true))
                    .map(|s| SiteChoice {
                        id: s.id,
                        name: s.name.unwrap_or_else(|| format!("Site {}", s.id)),
                        emaildomain: s.emaildomain,
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(CoreError::from(e).to_string())),
        },
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let (psa_fields, _) = core.contact_psa_fields().await;
    Ok(ContactsSetup {
        settings: core.contact_import_settings().await?,
        outlook_fields: CONTACT_FIELDS,
        psa_fields,
        sites,
        sites_error,
        schedule: core.contact_schedule(&mailbox_id).await?,
        running: inbound
            .engine()
            .contact_imports()
            .running()
            .contains(&mailbox_id),
    })
}

/// Saves the mappings and import settings (a field mapped twice is refused).
#[tauri::command]
pub async fn contacts_settings_set(
    state: State<'_, AppState>,
    settings: ImportSettings,
) -> UiResult<ImportSettings> {
    Ok(state.core.set_contact_import_settings(settings).await?)
}

#[tauri::command]
pub async fn contacts_schedule_set(
    state: State<'_, AppState>,
    mailbox_id: String,
    schedule: ContactSchedule,
) -> UiResult<ContactSchedule> {
    Ok(state
        .core
        .set_contact_schedule(&mailbox_id, schedule)
        .await?)
}

/// Every contact's decision; nothing is written.
#[tauri::command]
pub async fn contacts_preview(state: State<'_, AppState>, mailbox_id: String) -> UiResult<Preview> {
    Ok(state.core.preview_contact_import(&mailbox_id).await?)
}

/// Starts the import in the engine; progress and the end arrive as engine events.
#[tauri::command]
pub async fn contacts_import_start(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<()> {
    Ok(inbound
        .engine()
        .contact_imports()
        .start(&mailbox_id, ImportTrigger::Manual)?)
}

/// Cancels the running import (after the batch in flight).
#[tauri::command]
pub async fn contacts_import_cancel(
    inbound: State<'_, InboundState>,
    mailbox_id: String,
) -> UiResult<bool> {
    Ok(inbound.engine().contact_imports().cancel(&mailbox_id))
}

/// Import runs, newest first (of one mailbox when given).
#[tauri::command]
pub async fn contacts_runs(
    state: State<'_, AppState>,
    mailbox_id: Option<String>,
) -> UiResult<Vec<ImportRun>> {
    Ok(state
        .core
        .store()
        .contact_import_runs(mailbox_id.as_deref(), 100)
        .await
        .map_err(CoreError::from)?)
}

/// One run's contacts (of one outcome when given).
#[tauri::command]
pub async fn contacts_run_rows(
    state: State<'_, AppState>,
    run_id: i64,
    outcome: Option<ContactOutcome>,
) -> UiResult<Vec<ImportRow>> {
    Ok(state
        .core
        .store()
        .contact_import_rows(run_id, outcome, 5000, 0)
        .await
        .map_err(CoreError::from)?)
}
