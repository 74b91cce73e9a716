//! Adding, validating and removing mailboxes. Credentials go to the keyring, the rest to the
//! store; a failure in either leaves neither half behind.

use mailroom_secrets::{SecretKey, SecretKind, SecretValue};
use mailroom_store::{Cloud, CredentialKind, Mailbox, MailboxMethod, NewMailbox};
use serde::Deserialize;

use crate::{Core, CoreError};

/// What the mailbox setup form submits. The secret is only ever held in memory and handed
/// to the keyring.
#[derive(Debug, Deserialize)]
pub struct MailboxSetup {
    pub name: String,
    pub method: MailboxMethod,
    pub cloud: Cloud,
    #[serde(default)]
    pub authority_url: Option<String>,
    #[serde(default)]
    pub graph_url: Option<String>,
    pub tenant_id: String,
    pub client_id: String,
    pub credential_kind: CredentialKind,
    #[serde(default, deserialize_with = "secret_opt")]
    pub client_secret: Option<SecretValue>,
    #[serde(default)]
    pub shared_mailbox: Option<String>,
    #[serde(default)]
    pub mailbox_address: Option<String>,
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SecretValue>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    Ok(raw.filter(|s| !s.trim().is_empty()).map(SecretValue::new))
}

fn blank_to_none(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn is_guid(text: &str) -> bool {
    uuid_like(text.trim())
}

fn uuid_like(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(len, part)| part.len() == *len && part.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !text.contains(char::is_whitespace)
}

fn check_url(label: &str, value: &Option<String>) -> Result<(), CoreError> {
    let Some(value) = value else {
        return Err(CoreError::InvalidInput(format!(
            "{label} is required for a custom authority"
        )));
    };
    let lower = value.to_ascii_lowercase();
    let loopback = lower.starts_with("http://127.0.0.1") || lower.starts_with("http://localhost");
    if !(lower.starts_with("https://") || loopback) {
        return Err(CoreError::InvalidInput(format!(
            "{label} must be an https:// URL (plain http is only allowed for 127.0.0.1 or localhost)"
        )));
    }
    Ok(())
}

impl MailboxSetup {
    /// Checks the form and returns the record to store, with actionable messages.
    pub fn validate(&self) -> Result<NewMailbox, CoreError> {
        let invalid = |m: &str| Err(CoreError::InvalidInput(m.to_string()));
        if self.name.trim().is_empty() {
            return invalid("Give the mailbox a name.");
        }
        if !is_guid(&self.client_id) {
            return invalid("The client ID is the Application (client) ID GUID from the app registration's Overview page.");
        }
        let tenant = self.tenant_id.trim();
        if tenant.is_empty() {
            return invalid("The tenant ID is the Directory (tenant) ID GUID from the app registration's Overview page.");
        }
        if matches!(tenant, "common" | "organizations" | "consumers") {
            return invalid("Use your Directory (tenant) ID, not 'common', 'organizations' or 'consumers': single-tenant apps and app-only access need the tenant itself.");
        }
        let shared_mailbox = blank_to_none(self.shared_mailbox.clone());
        let mailbox_address = blank_to_none(self.mailbox_address.clone());
        let (authority_url, graph_url) = if self.cloud == Cloud::Custom {
            let a = blank_to_none(self.authority_url.clone());
            let g = blank_to_none(self.graph_url.clone());
            check_url("The authority URL", &a)?;
            check_url("The Graph URL", &g)?;
            (a, g)
        } else {
            (None, None)
        };
        match self.method {
            MailboxMethod::Scan => {
                if self.credential_kind == CredentialKind::Certificate {
                    return invalid("Mailbox scan signs in a user: use a public client (no secret) or a client secret, not a certificate.");
                }
                if let Some(shared) = &shared_mailbox {
                    if !is_email(shared) {
                        return invalid("The shared mailbox must be an email address, e.g. helpdesk@contoso.com.");
                    }
                }
            }
            MailboxMethod::Webhook => {
                if self.credential_kind == CredentialKind::Public {
                    return invalid("Webhooks use application permissions: the app registration needs a client secret or a certificate.");
                }
                match &mailbox_address {
                    Some(address) if is_email(address) => {}
                    _ => return invalid("Enter the mailbox address to subscribe to, e.g. support@contoso.com (its UPN must match the address)."),
                }
            }
        }
        if self.credential_kind == CredentialKind::Secret && self.client_secret.is_none() {
            return invalid(
                "Paste the client secret's Value (not its Secret ID) from Certificates & secrets.",
            );
        }
        Ok(NewMailbox {
            name: self.name.trim().to_string(),
            method: self.method,
            cloud: self.cloud,
            authority_url,
            graph_url,
            tenant_id: tenant.to_string(),
            client_id: self.client_id.trim().to_ascii_lowercase(),
            credential_kind: self.credential_kind,
            shared_mailbox: shared_mailbox.filter(|_| self.method == MailboxMethod::Scan),
            mailbox_address: mailbox_address.filter(|_| self.method == MailboxMethod::Webhook),
        })
    }
}

/// How logs and errors name a mailbox: "Support <support@contoso.test>", or the quoted name
/// when its address is not known — never its internal id.
pub fn label(mailbox: &Mailbox) -> String {
    match &mailbox.mailbox_address {
        Some(address) => format!("{} <{address}>", mailbox.name),
        None => format!("'{}'", mailbox.name),
    }
}

impl Core {
    /// Adds a mailbox: the record to the store, its client secret to the keyring.
    pub async fn add_mailbox(&self, setup: MailboxSetup) -> Result<Mailbox, CoreError> {
        let record = setup.validate()?;
        let mailbox = self.store().add_mailbox(&record).await?;
        if let Some(secret) = setup.client_secret {
            let key = SecretKey::new(&mailbox.id, SecretKind::ClientSecret);
            if let Err(e) = self.secrets().set(&key, &secret).await {
                // Leave nothing half-configured behind; a rollback that fails is reported
                // with its cause, the original error is returned.
                if let Err(rollback) = self.store().delete_mailbox(&mailbox.id).await {
                    tracing::error!(
                        mailbox = %mailbox.name,
                        "the keyring refused the client secret and the mailbox record could not be removed again: {rollback}"
                    );
                }
                return Err(e.into());
            }
        }
        tracing::info!(mailbox = %mailbox.name, method = ?mailbox.method, "mailbox added");
        Ok(mailbox)
    }

    /// Removes a mailbox and every secret it owns.
    pub async fn remove_mailbox(&self, id: &str) -> Result<(), CoreError> {
        let mailbox = self.store().mailbox(id).await?;
        self.secrets().delete_owner(&mailbox.id).await?;
        self.store().delete_mailbox(id).await?;
        tracing::info!(mailbox = %mailbox.name, "mailbox removed");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> MailboxSetup {
        MailboxSetup {
            name: "Support".into(),
            method: MailboxMethod::Scan,
            cloud: Cloud::Global,
            authority_url: None,
            graph_url: None,
            tenant_id: "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab".into(),
            client_id: "C0FFEE00-0000-4000-8000-000000000001".into(),
            credential_kind: CredentialKind::Public,
            client_secret: None,
            shared_mailbox: Some(" ".into()),
            mailbox_address: Some("ignored@contoso.test".into()),
        }
    }

    #[test]
    fn a_public_scan_mailbox_is_normalised() {
        let record = setup().validate().unwrap();
        assert_eq!(record.client_id, "c0ffee00-0000-4000-8000-000000000001");
        assert_eq!(record.shared_mailbox, None, "blank means none");
        assert_eq!(
            record.mailbox_address, None,
            "scan mailboxes have no webhook address"
        );
    }

    #[test]
    fn each_mistake_gets_its_own_message() {
        type Mutation = Box<dyn Fn(&mut MailboxSetup)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|s| s.client_id = "my-app".into()),
                "Application (client) ID",
            ),
            (Box::new(|s| s.tenant_id = "common".into()), "not 'common'"),
            (
                Box::new(|s| s.credential_kind = CredentialKind::Secret),
                "Value (not its Secret ID)",
            ),
            (
                Box::new(|s| s.shared_mailbox = Some("helpdesk".into())),
                "must be an email address",
            ),
            (
                Box::new(|s| {
                    s.method = MailboxMethod::Webhook;
                }),
                "application permissions",
            ),
            (
                Box::new(|s| {
                    s.method = MailboxMethod::Webhook;
                    s.credential_kind = CredentialKind::Secret;
                    s.client_secret = Some(SecretValue::new("x"));
                    s.mailbox_address = None;
                }),
                "mailbox address",
            ),
            (
                Box::new(|s| {
                    s.cloud = Cloud::Custom;
                    s.authority_url = Some("http://login.example.com".into());
                    s.graph_url = Some("https://graph.example.com".into());
                }),
                "must be an https:// URL",
            ),
        ];
        for (mutate, expected) in cases {
            let mut s = setup();
            mutate(&mut s);
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains(expected), "expected '{expected}' in '{err}'");
        }
    }

    #[test]
    fn the_sandbox_is_a_custom_loopback_cloud() {
        let mut s = setup();
        s.cloud = Cloud::Custom;
        s.authority_url = Some("http://127.0.0.1:47110".into());
        s.graph_url = Some("http://127.0.0.1:47111".into());
        let record = s.validate().unwrap();
        assert_eq!(record.graph_url.as_deref(), Some("http://127.0.0.1:47111"));
    }
}
