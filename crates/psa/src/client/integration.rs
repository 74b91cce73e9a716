//! What the integration wizard sets up: webhooks and their events, custom tabs and
//! certificates.

use reqwest::Method;

use super::PsaClient;
use crate::config::Secret;
use crate::error::PsaError;
use crate::model::*;

impl PsaClient {
    /// Configured outbound webhooks.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, PsaError> {
        self.get_list("Webhook", "webhooks", &[]).await
    }

    /// Creates an outbound webhook.
    pub async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, PsaError> {
        self.post_one("Webhook", webhook).await
    }

    /// Deletes a webhook by its uuid.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), PsaError> {
        let encoded: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        self.call(Method::DELETE, &format!("Webhook/{encoded}"), &[], None)
            .await
            .map(|_| ())
    }

    /// Webhook deliveries HaloPSA logged (optionally of one webhook), across pages.
    pub async fn webhook_events(
        &self,
        webhook_id: Option<&str>,
    ) -> Result<Vec<WebhookEvent>, PsaError> {
        let query: Vec<(String, String)> = webhook_id
            .map(|id| vec![("webhook_id".to_string(), id.to_string())])
            .unwrap_or_default();
        self.get_paged("WebhookEvent", "webhookevents", &query)
            .await
    }

    /// Custom tabs.
    pub async fn tabs(&self) -> Result<Vec<Tab>, PsaError> {
        self.get_list("Tabs", "tabs", &[]).await
    }

    /// Creates a custom tab.
    pub async fn create_tab(&self, tab: &NewTab) -> Result<Tab, PsaError> {
        self.post_one("Tabs", tab).await
    }

    /// Certificates registered in HaloPSA.
    pub async fn certificates(&self) -> Result<Vec<Certificate>, PsaError> {
        self.get_list("Certificate", "certificates", &[]).await
    }

    /// Registers a certificate (a PFX already uploaded as an attachment, plus its password).
    pub async fn create_certificate(
        &self,
        certificate: &NewCertificate,
    ) -> Result<Certificate, PsaError> {
        self.post_one("Certificate", certificate).await
    }

    /// Registers a PKCS#12 (PFX) certificate in two steps, as HaloPSA's `Certificate`
    /// resource implies ([U] in the reference): upload the file as an attachment, then
    /// `POST /Certificate` with its `attachment_id` and the PFX password.
    pub async fn register_certificate_pfx(
        &self,
        name: &str,
        filename: &str,
        pfx: &[u8],
        password: &Secret,
    ) -> Result<Certificate, PsaError> {
        let attachment = self
            .upload_attachment(&NewAttachment::from_bytes(
                filename,
                Some("application/x-pkcs12".to_string()),
                pfx,
            ))
            .await?;
        self.create_certificate(&NewCertificate {
            name: name.to_string(),
            attachment_id: attachment.id,
            new_password: password.clone(),
            extra: Default::default(),
        })
        .await
    }
}
