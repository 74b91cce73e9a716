//! Shared harness: the in-process sandbox (seeded tenant, empty inboxes), a store in a temp
//! directory, the support@ mailbox connected app-only, and a pipeline writing to the sandbox PSA.
#![allow(dead_code)]

use std::sync::Arc;

use mailroom_clock::SharedClock;
use mailroom_engine::events::EventBus;
use mailroom_engine::pipeline::{Pipeline, PipelineConfig};
use mailroom_engine::sync::{scan_once, ScanReport, SyncOptions};
use mailroom_graph::{
    AppOnlyTokens, AppRegistration, ClientCredential, Cloud, GraphClient, IdentityClient,
    MailboxRef, Secret,
};
use mailroom_graph_sandbox::{DeliveredMessage, InboundAttachment, InboundMail};
use mailroom_psa::{PsaClient, PsaConfig};
use mailroom_sandbox::{Sandbox, SandboxOptions, SandboxSeed};
use mailroom_store::{
    inbound::InboundEmail, inbound::LogQuery, CredentialKind, Mailbox, MailboxMethod, NewMailbox,
    Store,
};
use serde_json::{json, Value};
use url::Url;

pub const SUPPORT: &str = "support@contoso.test";
pub const HELPDESK: &str = "helpdesk@contoso.test";

pub struct Harness {
    pub sb: Sandbox,
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub pipeline: Arc<Pipeline>,
    pub mailbox: Mailbox,
    pub graph: GraphClient,
    pub options: SyncOptions,
}

/// Applies the Application Access Policy a careful admin sets up: the daemon application
/// reaches the support mailboxes only (the seeded tenant, like a new one, restricts nothing).
pub fn restrict_daemon_to_support(sb: &Sandbox) {
    sb.graph()
        .try_add_access_policy(mailroom_graph_sandbox::ApplicationAccessPolicy {
            app_id: mailroom_graph_sandbox::seed::DAEMON_APP_ID.into(),
            access_right: mailroom_graph_sandbox::AccessRight::RestrictAccess,
            mailboxes: vec![SUPPORT.into(), HELPDESK.into()],
        })
        .expect("the support mailboxes are in the tenant");
}

pub fn empty_seed() -> SandboxSeed {
    let mut seed = SandboxSeed::default();
    seed.graph.messages.clear();
    seed
}

pub async fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed: Some(empty_seed()),
        // Notifications go to a receiver on this machine (Graph itself requires HTTPS).
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

pub fn daemon_app(sb: &Sandbox) -> AppRegistration {
    AppRegistration {
        cloud: Cloud::Custom {
            authority_url: Url::parse(&sb.authority_url()).unwrap(),
            graph_url: Url::parse(&sb.graph_url()).unwrap(),
        },
        tenant: sb.tenant().tenant_id.clone(),
        client_id: sb.tenant().daemon_app.client_id.clone(),
        credential: ClientCredential::Secret(Secret::new(
            sb.tenant().daemon_app.client_secret.clone().unwrap(),
        )),
    }
}

pub fn graph_for(sb: &Sandbox, upn: &str) -> GraphClient {
    let tokens = Arc::new(AppOnlyTokens::new(
        IdentityClient::new(sb.clock()),
        daemon_app(sb),
    ));
    GraphClient::new(
        Url::parse(&sb.graph_url()).unwrap(),
        tokens,
        MailboxRef::User(upn.into()),
    )
    .with_clock(sb.clock())
    .with_immutable_ids(true)
}

pub fn psa_for(sb: &Sandbox) -> PsaClient {
    let creds = &sb.tenant().psa;
    let mut config = PsaConfig::new(
        sb.psa_url(),
        creds.client_id.clone(),
        creds.client_secret.clone(),
    );
    config.tenant = Some(creds.tenant.clone());
    PsaClient::new(config, sb.clock()).expect("psa client")
}

pub fn new_mailbox(sb: &Sandbox, name: &str, address: &str) -> NewMailbox {
    NewMailbox {
        name: name.into(),
        method: MailboxMethod::Webhook,
        cloud: mailroom_store::Cloud::Custom,
        authority_url: Some(sb.authority_url()),
        graph_url: Some(sb.graph_url()),
        tenant_id: sb.tenant().tenant_id.clone(),
        client_id: sb.tenant().daemon_app.client_id.clone(),
        credential_kind: CredentialKind::Secret,
        shared_mailbox: None,
        mailbox_address: Some(address.into()),
    }
}

pub async fn add_mailbox(
    store: &Store,
    sb: &Sandbox,
    name: &str,
    address: &str,
    settings: Value,
) -> Mailbox {
    let mb = store
        .add_mailbox(&new_mailbox(sb, name, address))
        .await
        .expect("mailbox added");
    store
        .set_mailbox_settings(&mb.id, &settings)
        .await
        .expect("settings saved");
    store.mailbox(&mb.id).await.unwrap()
}

/// A fresh sandbox + store + pipeline for support@, with the given mailbox settings.
pub async fn harness(settings: Value) -> Harness {
    harness_with_seed(settings, empty_seed()).await
}

/// [`harness`] over a sandbox started from `seed`.
pub async fn harness_with_seed(settings: Value, seed: SandboxSeed) -> Harness {
    let sb = Sandbox::start(SandboxOptions {
        seed: Some(seed),
        // Notifications go to a receiver on this machine (Graph itself requires HTTPS).
        loopback_webhooks: true,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("mailroom.db")).await.unwrap();
    let mailbox = add_mailbox(&store, &sb, "Support", SUPPORT, settings).await;
    let clock: SharedClock = sb.clock();
    let pipeline = Arc::new(Pipeline::new(
        store.clone(),
        psa_for(&sb),
        clock,
        PipelineConfig::default(),
        EventBus::new(),
    ));
    let graph = graph_for(&sb, SUPPORT);
    Harness {
        sb,
        dir,
        store,
        pipeline,
        mailbox,
        graph,
        options: SyncOptions::default(),
    }
}

impl Harness {
    pub fn deliver(&self, mail: InboundMail) -> DeliveredMessage {
        self.sb.graph().deliver(mail).expect("delivered")
    }

    pub async fn scan(&self) -> ScanReport {
        scan_once(
            &self.pipeline,
            &self.mailbox,
            &self.graph,
            &self.options,
            &Default::default(),
        )
        .await
        .expect("scan")
    }

    pub fn tickets(&self) -> Vec<Value> {
        self.sb.halo().tickets()
    }

    pub fn actions_of(&self, ticket_id: i64) -> Vec<Value> {
        self.sb
            .halo()
            .actions()
            .into_iter()
            .filter(|a| a["ticket_id"].as_i64() == Some(ticket_id))
            .collect()
    }

    pub fn ticket_by_message_id(&self, mid: &str) -> Vec<Value> {
        let want = mid.trim_matches(['<', '>']).to_lowercase();
        self.tickets()
            .into_iter()
            .filter(|t| {
                t["email_message_id"]
                    .as_str()
                    .is_some_and(|m| m.trim_matches(['<', '>']).to_lowercase() == want)
            })
            .collect()
    }

    pub async fn emails(&self) -> Vec<InboundEmail> {
        self.store
            .inbound_log(&LogQuery {
                mailbox_id: Some(self.mailbox.id.clone()),
                limit: Some(500),
                ..Default::default()
            })
            .await
            .unwrap()
    }

    pub async fn email_for(&self, delivered: &DeliveredMessage) -> InboundEmail {
        self.emails()
            .await
            .into_iter()
            .find(|e| e.internet_message_id.as_deref() == Some(&delivered.internet_message_id))
            .unwrap_or_else(|| panic!("no log row for {}", delivered.internet_message_id))
    }

    pub fn message_view(
        &self,
        delivered: &DeliveredMessage,
    ) -> mailroom_graph_sandbox::MessageView {
        self.sb
            .graph()
            .messages(SUPPORT)
            .into_iter()
            .find(|m| m.internet_message_id == delivered.internet_message_id)
            .expect("message still exists")
    }
}

pub fn mail(from: &str, name: &str, subject: &str) -> InboundMail {
    InboundMail {
        to: SUPPORT.into(),
        from: from.into(),
        from_name: Some(name.into()),
        subject: subject.into(),
        body_html: Some(format!("<p>{subject}: details of the problem.</p>")),
        ..Default::default()
    }
}

pub fn attachment(
    name: &str,
    content_type: &str,
    len: usize,
    inline: Option<&str>,
) -> InboundAttachment {
    InboundAttachment {
        name: name.into(),
        content_type: content_type.into(),
        content: (0..len).map(|i| (i % 251) as u8).collect(),
        inline: inline.is_some(),
        content_id: inline.map(str::to_string),
    }
}

pub fn settings(v: Value) -> Value {
    v
}

pub fn default_settings() -> Value {
    json!({})
}

// — Agents' replies (outgoing mail tests).

/// A core on the harness's data directory: the mailbox's client secret in the keyring, the
/// sandbox PSA connected.
pub async fn core_for(h: &Harness) -> mailroom_engine::Core {
    core_with_service(h, &format!("mailroom-test-{}", uuid::Uuid::new_v4())).await
}

/// [`core_for`] with the keyring service named (a child process opens the same one).
pub async fn core_with_service(h: &Harness, service: &str) -> mailroom_engine::Core {
    use mailroom_secrets::{SecretKey, SecretKind, SecretValue, Secrets};
    let core =
        mailroom_engine::Core::open_with_secrets(h.dir.path(), Secrets::with_service(service))
            .await
            .unwrap();
    core.secrets()
        .set(
            &SecretKey::new(&h.mailbox.id, SecretKind::ClientSecret),
            &SecretValue::new(h.sb.tenant().daemon_app.client_secret.clone().unwrap()),
        )
        .await
        .unwrap();
    let psa = &h.sb.tenant().psa;
    core.set_psa_connection(
        &h.sb.psa_url(),
        &psa.client_id,
        SecretValue::new(psa.client_secret.clone()),
        Some(&psa.tenant),
    )
    .await
    .unwrap();
    core
}

/// An agent's email action on `ticket_id`, as HaloPSA's webhook reports it (recorded as a
/// verified delivery would record it).
pub async fn agent_emails(h: &Harness, ticket_id: i64, note: &str) -> i64 {
    use mailroom_store::psa_webhooks::{
        DeliveryEffects, NewPsaDelivery, PsaAgentAction, Verification,
    };
    let action = psa_for(&h.sb)
        .create_action(&mailroom_psa::NewAction {
            ticket_id,
            outcome_id: Some(7),
            note_html: Some(format!("<p>{note}</p>")),
            emailto: Some("pat@fabrikam.test".into()),
            hiddenfromuser: false,
            sendemail: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let now = chrono::Utc::now();
    h.store
        .record_verified_psa_delivery(
            &NewPsaDelivery {
                received_at: now,
                payload_id: Some(uuid::Uuid::new_v4().to_string()),
                webhook_id: None,
                event: Some("action added".into()),
                ticket_id: Some(ticket_id),
                action_id: Some(action.id),
                verification: Verification::Verified,
                detail: "test".into(),
                status: 200,
                headers: vec![],
                body: "{}".into(),
            },
            &DeliveryEffects {
                ticket: None,
                action: Some(PsaAgentAction {
                    ticket_id,
                    action_id: action.id,
                    outcome: None,
                    note: None,
                    hidden_from_user: false,
                    agent_id: Some(1),
                    received_at: now,
                    delivery_id: 0,
                    handled_at: None,
                }),
            },
        )
        .await
        .unwrap();
    action.id
}

/// support@ as a Webhooks mailbox of `core`, with the daemon app's secret, connected.
pub async fn app_only_support(core: &mailroom_engine::Core, sb: &Sandbox) -> Mailbox {
    let t = sb.tenant();
    let mailbox = core
        .add_mailbox_with_credentials(
            mailroom_engine::mailboxes::MailboxSetup {
                name: "Support".into(),
                method: MailboxMethod::Webhook,
                cloud: mailroom_store::Cloud::Custom,
                authority_url: Some(sb.authority_url()),
                graph_url: Some(sb.graph_url()),
                tenant_id: t.tenant_id.clone(),
                client_id: t.daemon_app.client_id.clone(),
                credential_kind: CredentialKind::Secret,
                client_secret: Some(mailroom_secrets::SecretValue::new(
                    t.daemon_app.client_secret.clone().unwrap(),
                )),
                shared_mailbox: None,
                mailbox_address: Some(SUPPORT.into()),
            },
            None,
            None,
        )
        .await
        .unwrap();
    core.connect_app_only(&mailbox.id).await.unwrap();
    mailbox
}

/// The sandbox's HaloPSA as `core`'s PSA connection.
pub async fn connect_psa(core: &mailroom_engine::Core, sb: &Sandbox) {
    let t = sb.tenant();
    core.set_psa_connection(
        &sb.psa_url(),
        &t.psa.client_id,
        mailroom_secrets::SecretValue::new(t.psa.client_secret.clone()),
        Some(&t.psa.tenant),
    )
    .await
    .unwrap();
}

/// Polls `check` until it holds (a minute at most: a hang is a failure, not a timing).
pub async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never happened: {what}");
}
