//! Contact imports against the sandbox (issue 13): the preview decides every contact of the
//! seeded address book (300+ contacts in three folders), the run creates users on the site of
//! their domain or the default site, updates existing users only where mapped fields differ,
//! and a second run creates nothing. A batch HaloPSA refuses fails only the contact it refuses;
//! a run stopped mid-import resumes and creates nobody twice. Needs a Secret Service.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use mailroom_engine::contacts::run::{ImportProgress, RunOptions};
use mailroom_engine::contacts::ImportSettings;
use mailroom_store::contacts::{ContactOutcome, RunState};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// PSA users per address (lower case): never more than one each.
fn users_by_address(h: &Harness) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for u in h.sb.halo().users() {
        if let Some(a) = u["emailaddress"].as_str() {
            out.entry(a.to_lowercase()).or_default().push(u);
        }
    }
    out
}

async fn with_default_site(core: &mailroom_engine::Core) {
    core.set_contact_import_settings(ImportSettings {
        default_site_id: Some(12),
        ..ImportSettings::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_address_book_is_previewed_imported_on_the_right_sites_and_a_rerun_creates_nothing() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let contacts = h.sb.graph().contacts(SUPPORT);

    // Without a default site, contacts of domains no site has are skipped with the fix.
    let preview = core.preview_contact_import(&h.mailbox.id).await.unwrap();
    assert_eq!(preview.contacts.len(), contacts.len());
    let casey = preview
        .contacts
        .iter()
        .find(|p| p.email.as_deref() == Some("casey@adatum.test"))
        .unwrap();
    let json = serde_json::to_value(casey).unwrap();
    assert_eq!(json["action"], "skip");
    assert!(json["reason"]
        .as_str()
        .unwrap()
        .contains("choose a default site"));

    with_default_site(&core).await;
    let preview = core.preview_contact_import(&h.mailbox.id).await.unwrap();
    let c = preview.counts;
    assert!(c.create > 200, "{c:?}");
    // Pat and Lee exist in HaloPSA without a job title: updated.
    assert_eq!(c.update, 2, "{c:?}");
    assert!(c.skipped > 20, "{c:?}");
    assert_eq!(h.sb.halo().users().len(), 2, "the preview writes nothing");

    let seen: Arc<Mutex<Vec<ImportProgress>>> = Arc::default();
    let sink = seen.clone();
    let run = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            Some(Arc::new(move |p| sink.lock().unwrap().push(p))),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Finished);
    assert_eq!(run.total as usize, contacts.len());
    assert_eq!(run.counts.created as usize, c.create);
    assert_eq!(run.counts.updated as usize, c.update);
    assert_eq!(run.counts.skipped as usize, c.skipped);
    assert_eq!(run.counts.failed, 0);
    assert_eq!(run.counts.done(), run.total);
    let progress = seen.lock().unwrap().clone();
    assert!(progress.len() > 5, "progress after each batch");
    assert!(progress.windows(2).all(|w| w[0].done <= w[1].done));
    assert_eq!(progress.last().unwrap().done, run.total);

    // Users on the site of their domain, else the default site; one per address.
    let by_address = users_by_address(&h);
    assert!(by_address.values().all(|u| u.len() == 1), "a user twice");
    assert_eq!(by_address.len(), 2 + c.create);
    let site_of = |a: &str| by_address[a][0]["site_id"].as_f64().unwrap() as i64;
    assert_eq!(site_of("casey@adatum.test"), 12);
    let fabrikam = by_address
        .keys()
        .find(|a| a.ends_with("@fabrikam.test") && *a != "pat@fabrikam.test")
        .unwrap();
    assert_eq!(site_of(fabrikam), 10);
    assert_eq!(
        by_address["pat@fabrikam.test"][0]["title"],
        "Office Manager"
    );
    let zoe = by_address.keys().find(|a| a.starts_with("zoe.")).unwrap();
    assert!(by_address[zoe][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("Zoë"));

    // Each contact's outcome is kept with its reason.
    let skipped = core
        .store()
        .contact_import_rows(run.id, Some(ContactOutcome::Skipped), 1000, 0)
        .await
        .unwrap();
    assert!(skipped
        .iter()
        .any(|r| r.reason.as_deref() == Some("No email address")));
    assert!(skipped.iter().any(|r| r
        .reason
        .as_deref()
        .unwrap_or("")
        .starts_with("Duplicate of")));
    let created = core
        .store()
        .contact_import_rows(run.id, Some(ContactOutcome::Created), 1, 0)
        .await
        .unwrap();
    assert!(created[0].psa_user_id.is_some());
    assert!(created[0]
        .requests
        .as_array()
        .is_some_and(|r| !r.is_empty()));

    // A second run: nothing created, every imported contact unchanged.
    let again = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.counts.created, 0);
    assert_eq!(again.counts.updated, 0);
    assert_eq!(again.counts.unchanged as usize, c.create + c.update);
    assert_eq!(users_by_address(&h).len(), 2 + c.create);
}

#[tokio::test]
async fn a_value_halopsa_refuses_fails_only_its_contact_and_nothing_is_created_twice() {
    a_refused_value_fails_only_its_contact(false).await;
}

/// The same when HaloPSA refuses a whole batch for one bad user (saving none of it): the
/// batch is split until the bad user is alone, without reading every user back.
#[tokio::test]
async fn a_whole_batch_refused_for_one_value_is_split_and_fails_only_its_contact() {
    a_refused_value_fails_only_its_contact(true).await;
}

async fn a_refused_value_fails_only_its_contact(whole_batch: bool) {
    let h = harness(default_settings()).await;
    h.sb.halo()
        .update_behaviour(|b| b.reject_whole_batch = whole_batch);
    let core = core_for(&h).await;
    let mut settings = ImportSettings {
        default_site_id: Some(12),
        ..ImportSettings::default()
    };
    // Notes into a text field of HaloPSA's usual width: the 500-character ones are refused.
    settings
        .mappings
        .push(mailroom_engine::contacts::fields::FieldMapping {
            outlook: "personalNotes".into(),
            psa: "other1".into(),
        });
    core.set_contact_import_settings(settings).await.unwrap();
    let long_notes =
        h.sb.graph()
            .contacts(SUPPORT)
            .iter()
            .filter(|c| {
                c.contact
                    .personal_notes
                    .as_deref()
                    .is_some_and(|n| n.len() > 255)
            })
            .count();
    assert!(long_notes > 3);
    let reads_before =
        h.sb.faults()
            .count(mailroom_sandbox::Service::Psa, "GET", "/api/Users");
    let run = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Finished);
    let failed = core
        .store()
        .contact_import_rows(run.id, Some(ContactOutcome::Failed), 100, 0)
        .await
        .unwrap();
    assert!(
        !failed.is_empty() && failed.len() <= long_notes,
        "{failed:?}"
    );
    for f in &failed {
        let reason = f.reason.as_deref().unwrap();
        assert!(
            reason.contains("would be truncated") && reason.contains("other1"),
            "{reason}"
        );
        let email = f.email.as_deref().unwrap();
        assert!(
            !users_by_address(&h).contains_key(email),
            "{email} was created"
        );
    }
    assert!(users_by_address(&h).values().all(|u| u.len() == 1));
    let created = users_by_address(&h).len();
    // A refused batch costs a read-back of its first users (until one is missing) and of the
    // lone refused one — not one of each user it held.
    let reads =
        h.sb.faults()
            .count(mailroom_sandbox::Service::Psa, "GET", "/api/Users")
            - reads_before;
    assert!(
        reads < (created as u64 + failed.len() as u64) / 2,
        "{reads} read-backs for {created} users created and {} refused",
        failed.len()
    );

    let again = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.counts.created, 0);
    assert_eq!(again.counts.failed as usize, failed.len());
    assert_eq!(users_by_address(&h).len(), created);
}

#[tokio::test]
async fn a_cancelled_run_stops_between_batches_and_a_stopped_one_resumes_without_creating_twice() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    with_default_site(&core).await;

    // Cancelled after the first batch of new users.
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let run = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            Some(Arc::new(move |p: ImportProgress| {
                if p.counts.created > 0 {
                    stop.cancel();
                }
            })),
            cancel,
        )
        .await
        .unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(run.counts.created, 20, "one batch");
    assert!(run.counts.done() < run.total);

    // A stop in the middle of a batch: the run was running, an address was claimed and its
    // user reached HaloPSA, but the answer never arrived.
    let store = core.store();
    let stopped = store
        .start_contact_import(
            &h.mailbox.id,
            mailroom_store::contacts::ImportTrigger::Manual,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let preview = core.preview_contact_import(&h.mailbox.id).await.unwrap();
    let next = preview
        .contacts
        .iter()
        .find(|p| serde_json::to_value(p).unwrap()["action"] == "create")
        .unwrap();
    let email = next.email.clone().unwrap();
    store
        .claim_contact_email(&email, &h.mailbox.id, &next.contact_id, chrono::Utc::now())
        .await
        .unwrap();
    let landed = psa_for(&h.sb)
        .create_user(&mailroom_psa::NewUser {
            name: next.display_name.clone(),
            site_id: next.site_id.unwrap(),
            emailaddress: email.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(store.interrupt_contact_imports().await.unwrap(), 1);

    let resumed = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(resumed.id, stopped.id, "the interrupted run is resumed");
    assert_eq!(resumed.state, RunState::Finished);
    assert_eq!(users_by_address(&h)[&email].len(), 1);
    assert_eq!(users_by_address(&h)[&email][0]["id"], landed.id);
    assert!(
        users_by_address(&h).values().all(|u| u.len() == 1),
        "a user twice"
    );
    assert!(store.unsettled_contact_emails().await.unwrap().is_empty());
    assert_eq!(resumed.counts.done(), resumed.total);
}

fn graph_requests(run: &mailroom_store::contacts::ImportRun) -> usize {
    run.requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == "graph")
        .count()
}

#[tokio::test]
async fn a_scheduled_import_reads_only_what_changed_and_reports_deleted_contacts() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    with_default_site(&core).await;
    let scheduled = RunOptions {
        trigger: mailroom_store::contacts::ImportTrigger::Scheduled,
        ..RunOptions::default()
    };
    let first = core
        .run_contact_import(&h.mailbox.id, scheduled, None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first.total as usize, h.sb.graph().contacts(SUPPORT).len());
    assert!(first.counts.created > 200);

    // Nothing changed: one Graph request, HaloPSA not read.
    let idle = core
        .run_contact_import(&h.mailbox.id, scheduled, None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(idle.total, 0);
    assert_eq!(graph_requests(&idle), 1, "{}", idle.requests);
    assert!(
        idle.requests
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["service"] != "psa"),
        "no PSA request: {}",
        idle.requests
    );

    // One changed, one added, one deleted.
    let contacts = h.sb.graph().contacts(SUPPORT);
    let changed = contacts
        .iter()
        .find(|c| {
            c.contact
                .email_addresses
                .first()
                .is_some_and(|(_, a)| a.ends_with("@northwind.test"))
        })
        .unwrap();
    h.sb.graph().update_contact(SUPPORT, &changed.id, |c| {
        c.job_title = Some("Chief Buyer".into())
    });
    let deleted = contacts
        .iter()
        .find(|c| {
            c.id != changed.id
                && c.contact
                    .email_addresses
                    .first()
                    .is_some_and(|(_, a)| a.ends_with("@fabrikam.test") && a.contains('.'))
        })
        .unwrap();
    let deleted_address = deleted.contact.email_addresses[0].1.to_lowercase();
    h.sb.graph().delete_contact(SUPPORT, &deleted.id);
    h.sb.graph()
        .add_contact(mailroom_graph_sandbox::SeedContact {
            mailbox: SUPPORT.into(),
            folder: Some("Suppliers".into()),
            display_name: "Ana Novak".into(),
            email_addresses: vec![("Ana Novak".into(), "ana.novak@northwind.test".into())],
            ..Default::default()
        })
        .unwrap();
    let third = core
        .run_contact_import(&h.mailbox.id, scheduled, None, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(third.total, 3, "{:?}", third.counts);
    assert_eq!(
        (
            third.counts.updated,
            third.counts.created,
            third.counts.removed
        ),
        (1, 1, 1)
    );
    let removed = core
        .store()
        .contact_import_rows(third.id, Some(ContactOutcome::Removed), 10, 0)
        .await
        .unwrap();
    assert_eq!(removed[0].email.as_deref(), Some(deleted_address.as_str()));
    assert!(
        removed[0].reason.as_deref().unwrap().contains("is kept"),
        "{:?}",
        removed[0].reason
    );
    assert_eq!(
        users_by_address(&h)[&deleted_address].len(),
        1,
        "never deleted in HaloPSA"
    );
    let by_address = users_by_address(&h);
    assert_eq!(
        by_address["ana.novak@northwind.test"][0]["site_id"].as_f64(),
        Some(11.0)
    );
}

#[tokio::test]
async fn imports_run_in_the_background_one_per_mailbox_and_on_their_schedule() {
    use mailroom_engine::contacts::imports::{ContactImports, ContactSchedule};
    use mailroom_engine::events::{EngineEvent, EventBus};
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    with_default_site(&core).await;
    let bus = EventBus::new();
    let mut rx = bus.subscribe();
    let imports = ContactImports::new(core.clone(), bus.clone(), CancellationToken::new());
    imports
        .start(
            &h.mailbox.id,
            mailroom_store::contacts::ImportTrigger::Manual,
        )
        .unwrap();
    let again = imports
        .start(
            &h.mailbox.id,
            mailroom_store::contacts::ImportTrigger::Manual,
        )
        .unwrap_err();
    assert!(again.to_string().contains("already running"), "{again}");
    let mut progress = 0;
    let done = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            EngineEvent::ContactImport { .. } => progress += 1,
            EngineEvent::ContactImportDone { run, error, .. } => break (run, error),
            _ => {}
        }
    };
    assert!(progress > 3);
    assert_eq!(done.1, None);
    assert_eq!(done.0.unwrap().state, RunState::Finished);

    // The schedule: off by default; on, due at once, then not until the interval passed.
    let now = chrono::Utc::now();
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, now).await.unwrap(),
        None
    );
    let bad = core
        .set_contact_schedule(
            &h.mailbox.id,
            ContactSchedule {
                enabled: true,
                every_minutes: 1,
            },
        )
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("Import every 5 to 10080 minutes"),
        "{bad}"
    );
    core.set_contact_schedule(
        &h.mailbox.id,
        ContactSchedule {
            enabled: true,
            every_minutes: 30,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, now).await.unwrap(),
        Some(mailroom_store::contacts::ImportTrigger::Scheduled)
    );
    let scheduler = tokio::spawn(
        imports
            .clone()
            .schedule(std::time::Duration::from_millis(100)),
    );
    let scheduled = loop {
        if let EngineEvent::ContactImportDone { run, .. } =
            tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
                .await
                .unwrap()
                .unwrap()
        {
            break run.unwrap();
        }
    };
    assert_eq!(
        scheduled.trigger,
        mailroom_store::contacts::ImportTrigger::Scheduled
    );
    assert_eq!(scheduled.counts.created, 0);
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, chrono::Utc::now())
            .await
            .unwrap(),
        None
    );
    assert!(core
        .contact_import_due(
            &h.mailbox.id,
            chrono::Utc::now() + chrono::Duration::minutes(31)
        )
        .await
        .unwrap()
        .is_some());
    scheduler.abort();
}

#[tokio::test]
async fn a_run_halopsa_fails_mid_import_is_retried_with_back_off_and_finishes_without_duplicates() {
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    with_default_site(&core).await;
    // HaloPSA fails the fourth POST of new users (a server error: never retried for a POST,
    // since it may have saved them) and the run stops there.
    h.sb.faults()
        .add(
            mailroom_sandbox::FaultRule::fail_next(
                mailroom_sandbox::Service::Psa,
                "/api/Users",
                1,
                500,
            )
            .with_method("POST")
            .after(4),
        )
        .unwrap();
    let failed = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(failed.to_string().contains("500"), "{failed}");
    let run = core
        .store()
        .contact_import_runs(Some(&h.mailbox.id), 1)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(run.state, RunState::Failed);
    assert!(
        run.counts.created > 0 && run.counts.done() < run.total,
        "{:?}",
        run.counts
    );

    // Retried after a minute, then after two.
    let at = run.finished_at.unwrap();
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, at).await.unwrap(),
        None
    );
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, at + chrono::Duration::seconds(61))
            .await
            .unwrap(),
        Some(mailroom_store::contacts::ImportTrigger::Manual)
    );

    let done = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.state, RunState::Finished);
    assert!(
        users_by_address(&h).values().all(|u| u.len() == 1),
        "a user twice"
    );
    assert_eq!(
        core.contact_import_due(&h.mailbox.id, chrono::Utc::now())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn custom_fields_halopsa_exposes_are_mapping_targets() {
    use mailroom_engine::contacts::fields::FieldMapping;
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    let (fields, unread) = core.contact_psa_fields().await;
    assert_eq!(unread, None);
    let cost = fields
        .iter()
        .find(|f| f.key == "custom:CFCostCentre")
        .unwrap();
    assert_eq!(cost.custom_id, Some(171));
    assert!(cost.label.contains("Cost centre"));

    let mut settings = ImportSettings {
        default_site_id: Some(12),
        ..ImportSettings::default()
    };
    settings.mappings.push(FieldMapping {
        outlook: "officeLocation".into(),
        psa: "custom:CFCostCentre".into(),
    });
    let mut gone = settings.clone();
    gone.mappings.push(FieldMapping {
        outlook: "businessHomePage".into(),
        psa: "custom:CFRetired".into(),
    });
    let refused = core.set_contact_import_settings(gone).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no user field 'custom:CFRetired'"),
        "{refused}"
    );
    core.set_contact_import_settings(settings).await.unwrap();

    let run = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(run.counts.failed, 0);
    let contact =
        h.sb.graph()
            .contacts(SUPPORT)
            .into_iter()
            .find(|c| {
                c.contact.office_location.is_some()
                    && c.contact
                        .email_addresses
                        .first()
                        .is_some_and(|(_, a)| a.ends_with("@northwind.test"))
            })
            .unwrap();
    let address = contact.contact.email_addresses[0].1.to_lowercase();
    let user = &users_by_address(&h)[&address][0];
    let value = user["customfields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "CFCostCentre")
        .unwrap()["value"]
        .clone();
    assert_eq!(value, contact.contact.office_location.clone().unwrap());

    // Changed in Outlook: updated in HaloPSA's custom field; the rest unchanged.
    h.sb.graph().update_contact(SUPPORT, &contact.id, |c| {
        c.office_location = Some("Building 42".into())
    });
    let again = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        (again.counts.updated, again.counts.created),
        (1, 0),
        "{:?}",
        again.counts
    );
    let user = &users_by_address(&h)[&address][0];
    assert!(user["customfields"].to_string().contains("Building 42"));
}

#[tokio::test]
async fn a_grant_withdrawn_before_an_import_is_named_and_nothing_is_written() {
    use mailroom_graph_sandbox::seed::{AccessRight, ApplicationAccessPolicy, DAEMON_APP_ID};
    let h = harness(default_settings()).await;
    let core = core_for(&h).await;
    with_default_site(&core).await;
    // The tenant's admin puts the mailbox out of the app's reach.
    h.sb.graph().clear_access_policies(DAEMON_APP_ID);
    h.sb.graph().add_access_policy(ApplicationAccessPolicy {
        app_id: DAEMON_APP_ID.into(),
        access_right: AccessRight::DenyAccess,
        mailboxes: vec![SUPPORT.into()],
    });
    let preview = core
        .preview_contact_import(&h.mailbox.id)
        .await
        .unwrap_err();
    assert!(
        preview.to_string().contains("Application Access Policy"),
        "{preview}"
    );
    let users = h.sb.halo().users().len();
    let run = core
        .run_contact_import(
            &h.mailbox.id,
            RunOptions::default(),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(
        run.to_string().contains("Test-ApplicationAccessPolicy"),
        "{run}"
    );
    assert_eq!(h.sb.halo().users().len(), users, "nothing written");
    let stored = core
        .store()
        .contact_import_runs(Some(&h.mailbox.id), 1)
        .await
        .unwrap();
    assert_eq!(stored[0].state, RunState::Failed);
    assert!(stored[0]
        .error
        .as_deref()
        .unwrap()
        .contains("Application Access Policy"));
}
