//! The seeded tenant: directory users, their mail, contacts, delegate grants and application
//! access policies (the shared contract in `notes/seed.md`).
//!
//! [`GraphSeed::default`] is the deterministic sandbox tenant. A seed can also be read from
//! JSON (`serde`), e.g. a seed file handed to `mailroom sandbox`.

use serde::{Deserialize, Serialize};

use crate::InboundMail;

/// Directory (tenant) id of the sandbox tenant.
pub const TENANT_ID: &str = "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab";
/// Verified domain of the sandbox tenant.
pub const TENANT_DOMAIN: &str = "contoso.test";
/// Object id of `support@contoso.test`.
pub const SUPPORT_USER_ID: &str = "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c01";
/// Object id of `megan@contoso.test`.
pub const MEGAN_USER_ID: &str = "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c02";
/// Object id of `alex@contoso.test`.
pub const ALEX_USER_ID: &str = "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c03";
/// Object id of the shared mailbox `helpdesk@contoso.test`.
pub const HELPDESK_USER_ID: &str = "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c04";
/// Client id of the "Mailroom Desktop" public client.
/// Id of Diego Siciliani (CFO): the mailbox the seeded tenant's admin names as the canary that
/// the webhooks application must not reach.
pub const DIEGO_USER_ID: &str = "8a3c1f52-6d0e-4b7a-9c21-5e4f3a2b1c05";
/// The seeded canary mailbox: an executive's inbox no mail-to-ticket application should read.
/// The seed restricts nothing (a new tenant's app-only grant reaches every mailbox), so the
/// blast-radius check finds it readable until a policy is applied through the control API.
pub const CANARY_MAILBOX: &str = "diego@contoso.test";
pub const DESKTOP_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000001";
/// Client id of the "Mailroom Web" confidential client.
pub const WEB_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000002";
/// Client id of the "Mailroom Daemon" app (application permissions).
pub const DAEMON_APP_ID: &str = "c0ffee00-0000-4000-8000-000000000003";

/// The whole seed of the emulated Graph tenant.
///
/// In JSON every list defaults to empty (a seed file is complete, it is not merged with the
/// default tenant) and `tenantId` defaults to [`TENANT_ID`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphSeed {
    /// Directory (tenant) id, echoed in notifications as `tenantId`.
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    /// Directory users; every user (shared or not) has a mailbox.
    #[serde(default)]
    pub users: Vec<SeedUser>,
    /// Messages placed in mailboxes at start.
    #[serde(default)]
    pub messages: Vec<SeedMessage>,
    /// Contacts placed in mailboxes' default contacts folder.
    #[serde(default)]
    pub contacts: Vec<SeedContact>,
    /// Exchange mailbox permissions (FullAccess, SendAs, SendOnBehalf).
    #[serde(default)]
    pub grants: Vec<DelegateGrant>,
    /// Exchange application access policies restricting app-only tokens.
    #[serde(default)]
    pub policies: Vec<ApplicationAccessPolicy>,
    /// Instant the seeded `minutes_ago` values count back from; `None` = the clock's now at
    /// [`crate::GraphSandbox::new`].
    #[serde(default)]
    pub base_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// A directory user and its mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedUser {
    /// Object id (GUID).
    pub id: String,
    /// Sign-in name.
    pub user_principal_name: String,
    /// Primary SMTP address.
    pub mail: String,
    /// Display name.
    pub display_name: String,
    /// Shared mailbox: the account is disabled and cannot sign in.
    #[serde(default)]
    pub shared: bool,
    /// Given name (optional).
    #[serde(default)]
    pub given_name: Option<String>,
    /// Surname (optional).
    #[serde(default)]
    pub surname: Option<String>,
    /// Job title (optional).
    #[serde(default)]
    pub job_title: Option<String>,
}

/// One seeded message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedMessage {
    /// Mailbox (UPN, mail or object id) holding the message.
    pub mailbox: String,
    /// Well-known folder name (`inbox`, `sentitems`, `archive`, …).
    #[serde(default = "default_folder")]
    pub folder: String,
    /// How long before the seed's base time the message was received.
    pub minutes_ago: i64,
    /// Whether the message starts read.
    #[serde(default)]
    pub is_read: bool,
    /// The message itself (sender, subject, bodies, headers, attachments, threading).
    /// A `Message-ID` header in `mail.headers` fixes the message's internetMessageId.
    pub mail: InboundMail,
    /// When set, the message is a delivery status notification (multipart/report).
    #[serde(default)]
    pub delivery_report: Option<DeliveryReport>,
}

fn default_tenant() -> String {
    TENANT_ID.into()
}

fn default_folder() -> String {
    "inbox".into()
}

/// The machine-readable part of a bounce (RFC 3464 `message/delivery-status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryReport {
    /// Reporting MTA name, e.g. `mx.fabrikam.test`.
    pub reporting_mta: String,
    /// The recipient that failed.
    pub final_recipient: String,
    /// `failed`, `delayed`, …
    pub action: String,
    /// Status code, e.g. `5.1.1`.
    pub status: String,
    /// SMTP diagnostic text.
    pub diagnostic: String,
    /// Headers of the original message (returned as `text/rfc822-headers`).
    pub original_headers: String,
}

/// A contact in a mailbox's address book.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SeedContact {
    /// Mailbox (UPN, mail or object id) owning the contact.
    pub mailbox: String,
    /// The contact folder, as a path of display names under the default *Contacts* folder
    /// (`"Suppliers"`, `"Customers/Key accounts"`); none: the default folder itself.
    pub folder: Option<String>,
    pub display_name: String,
    pub given_name: Option<String>,
    pub middle_name: Option<String>,
    pub surname: Option<String>,
    /// Email addresses of the contact (name, address).
    pub email_addresses: Vec<(String, String)>,
    pub company_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub business_phones: Vec<String>,
    pub home_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    pub business_address: Option<SeedAddress>,
    pub business_home_page: Option<String>,
    pub personal_notes: Option<String>,
}

/// A contact's postal address (Graph's `physicalAddress`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct SeedAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country_or_region: Option<String>,
    pub postal_code: Option<String>,
}

/// Exchange mailbox permission kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailboxRight {
    /// Read and manage the mailbox.
    FullAccess,
    /// Send as the mailbox.
    SendAs,
    /// Send on behalf of the mailbox.
    SendOnBehalf,
}

/// A delegate's rights on another mailbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DelegateGrant {
    /// The mailbox the rights are on (UPN, mail or id).
    pub mailbox: String,
    /// The user holding the rights (UPN, mail or id).
    pub delegate: String,
    pub rights: Vec<MailboxRight>,
}

/// `-AccessRight` of `New-ApplicationAccessPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRight {
    /// The app may reach only the listed mailboxes.
    RestrictAccess,
    /// The app may reach every mailbox except the listed ones.
    DenyAccess,
}

/// An Exchange application access policy (applies to app-only tokens only).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationAccessPolicy {
    /// Client id of the application.
    pub app_id: String,
    pub access_right: AccessRight,
    /// Members of the policy scope group (UPN, mail or id).
    pub mailboxes: Vec<String>,
}

fn user(id: &str, local: &str, name: &str, shared: bool, title: Option<&str>) -> SeedUser {
    let mut parts = name.splitn(2, ' ');
    let (given, sur) = if shared {
        (None, None)
    } else {
        (
            parts.next().map(str::to_owned),
            parts.next().map(str::to_owned),
        )
    };
    SeedUser {
        id: id.into(),
        user_principal_name: format!("{local}@{TENANT_DOMAIN}"),
        mail: format!("{local}@{TENANT_DOMAIN}"),
        display_name: name.into(),
        shared,
        given_name: given,
        surname: sur,
        job_title: title.map(str::to_owned),
    }
}

/// A minimal but valid one-page PDF, used as the seeded PDF attachment.
pub const SAMPLE_PDF: &[u8] = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\nxref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n0000000101 00000 n \ntrailer<</Size 4/Root 1 0 R>>\nstartxref\n164\n%%EOF\n";

/// A valid 1×1 PNG image, used as the seeded inline (cid) image.
pub const SAMPLE_PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0xDA, 0x63, 0x64, 0x60, 0xF8, 0x5F,
    0x0F, 0x00, 0x02, 0x87, 0x01, 0x80, 0xEB, 0x47, 0xBA, 0x92, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
];

struct M<'a> {
    mailbox: &'a str,
    folder: &'a str,
    minutes_ago: i64,
    read: bool,
    from: (&'a str, &'a str),
    to: &'a str,
    subject: &'a str,
    text: &'a str,
    html: bool,
    id: &'a str,
}

fn msg(m: M<'_>) -> SeedMessage {
    let html = m.html.then(|| {
        let paras: String = m
            .text
            .split("\n\n")
            .map(|p| format!("<p>{}</p>", p.replace('\n', "<br>")))
            .collect();
        format!("<html><head><meta charset=\"utf-8\"></head><body>{paras}</body></html>")
    });
    SeedMessage {
        mailbox: m.mailbox.into(),
        folder: m.folder.into(),
        minutes_ago: m.minutes_ago,
        is_read: m.read,
        delivery_report: None,
        mail: InboundMail {
            to: m.to.into(),
            from: m.from.0.into(),
            from_name: (!m.from.1.is_empty()).then(|| m.from.1.to_owned()),
            subject: m.subject.into(),
            body_html: html,
            body_text: Some(m.text.into()),
            headers: vec![("Message-ID".into(), format!("<{}>", m.id))],
            attachments: vec![],
            in_reply_to: None,
            references: vec![],
        },
    }
}

const PAT: (&str, &str) = ("pat@fabrikam.test", "Pat Smith");
const LEE: (&str, &str) = ("lee@fabrikam.test", "Lee Chen");
const DANA: (&str, &str) = ("dana@northwind.test", "Dana Whitaker");
const SAM: (&str, &str) = ("sam@outlook.test", "Sam Taylor");
const SUPPORT: &str = "support@contoso.test";
const HELPDESK: &str = "helpdesk@contoso.test";

fn default_messages() -> Vec<SeedMessage> {
    let mut out = Vec::new();
    // --- support@: the printer thread (customer → support reply → customer "RE:") ---
    out.push(msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 4320,
        read: true,
        from: PAT,
        to: SUPPORT,
        subject: "Printer on 3rd floor not working",
        text: "Hi team,\n\nThe printer on the 3rd floor shows \"Paper jam\" but there is no paper stuck.\n\nThanks,\nPat",
        html: true,
        id: "printer-3f-0001@fabrikam.test",
    }));
    let mut sent = msg(M {
        mailbox: SUPPORT,
        folder: "sentitems",
        minutes_ago: 4200,
        read: true,
        from: ("support@contoso.test", "Contoso Support"),
        to: "pat@fabrikam.test",
        subject: "RE: Printer on 3rd floor not working",
        text: "Hi Pat,\n\nCould you send us the printer's asset tag?\n\nContoso Support",
        html: true,
        id: "reply-printer-0002@contoso.test",
    });
    sent.mail.in_reply_to = Some("<printer-3f-0001@fabrikam.test>".into());
    sent.mail.references = vec!["<printer-3f-0001@fabrikam.test>".into()];
    out.push(sent);
    let mut re = msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 3900,
        read: false,
        from: PAT,
        to: SUPPORT,
        subject: "RE: Printer on 3rd floor not working",
        text: "Hi,\n\nThe asset tag is FAB-PRN-0311.\n\nPat\n\n> Could you send us the printer's asset tag?",
        html: true,
        id: "printer-3f-0003@fabrikam.test",
    });
    re.mail.in_reply_to = Some("<reply-printer-0002@contoso.test>".into());
    re.mail.references = vec![
        "<printer-3f-0001@fabrikam.test>".into(),
        "<reply-printer-0002@contoso.test>".into(),
    ];
    out.push(re);
    // --- attachments ---
    let mut vpn = msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 3000,
        read: false,
        from: LEE,
        to: SUPPORT,
        subject: "VPN drops every 10 minutes",
        text:
            "Hello,\n\nMy VPN connection drops every 10 minutes. The client log is attached.\n\nLee",
        html: false,
        id: "vpn-drop-0004@fabrikam.test",
    });
    vpn.mail.attachments.push(crate::InboundAttachment {
        name: "vpn-client-log.pdf".into(),
        content_type: "application/pdf".into(),
        content: SAMPLE_PDF.to_vec(),
        inline: false,
        content_id: None,
    });
    out.push(vpn);
    let mut shot = msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2800,
        read: false,
        from: LEE,
        to: SUPPORT,
        subject: "Error when opening the CRM",
        text: "Hi,\n\nI get this error when I open the CRM (screenshot below).\n\nLee",
        html: false,
        id: "crm-error-0005@fabrikam.test",
    });
    shot.mail.body_html = Some(
        "<html><body><p>Hi,</p><p>I get this error when I open the CRM:</p>\
         <p><img src=\"cid:screenshot-0005@fabrikam.test\" alt=\"screenshot\"></p><p>Lee</p></body></html>"
            .into(),
    );
    shot.mail.attachments.push(crate::InboundAttachment {
        name: "screenshot.png".into(),
        content_type: "image/png".into(),
        content: SAMPLE_PNG.to_vec(),
        inline: true,
        content_id: Some("screenshot-0005@fabrikam.test".into()),
    });
    shot.mail.attachments.push(crate::InboundAttachment {
        name: "crm-settings.pdf".into(),
        content_type: "application/pdf".into(),
        content: SAMPLE_PDF.to_vec(),
        inline: false,
        content_id: None,
    });
    out.push(shot);
    // --- unknown senders ---
    out.push(msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2500,
        read: false,
        from: DANA,
        to: SUPPORT,
        subject: "New starter account request",
        text: "Hello,\n\nWe have a new starter on Monday, Jordan Reyes. Please create an account.\n\nDana Whitaker\nNorthwind Traders",
        html: true,
        id: "new-starter-0006@northwind.test",
    }));
    out.push(msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2400,
        read: false,
        from: SAM,
        to: SUPPORT,
        subject: "Question about your services",
        text: "Hi,\n\nDo you offer managed backup for small offices?\n\nSam",
        html: false,
        id: "question-0007@outlook.test",
    }));
    // --- auto-reply ---
    let mut auto = msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2300,
        read: false,
        from: PAT,
        to: SUPPORT,
        subject: "Automatic reply: RE: Printer on 3rd floor not working",
        text: "I am out of the office until Monday with limited access to email.",
        html: false,
        id: "autoreply-0008@fabrikam.test",
    });
    auto.mail.headers.extend([
        ("Auto-Submitted".into(), "auto-replied".into()),
        ("X-Auto-Response-Suppress".into(), "All".into()),
        ("Precedence".into(), "auto_reply".into()),
    ]);
    auto.mail.in_reply_to = Some("<reply-printer-0002@contoso.test>".into());
    out.push(auto);
    // --- bounce (DSN) ---
    let mut bounce = msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2200,
        read: false,
        from: ("MAILER-DAEMON@mx.fabrikam.test", "Mail Delivery System"),
        to: SUPPORT,
        subject: "Undeliverable: RE: Printer on 3rd floor not working",
        text: "Delivery has failed to these recipients or groups:\n\nformer.employee@fabrikam.test\nThe email address you entered couldn't be found.",
        html: false,
        id: "dsn-0009@mx.fabrikam.test",
    });
    bounce.mail.headers.extend([
        ("Auto-Submitted".into(), "auto-replied".into()),
        ("Return-Path".into(), "<>".into()),
    ]);
    bounce.delivery_report = Some(DeliveryReport {
        reporting_mta: "dns; mx.fabrikam.test".into(),
        final_recipient: "rfc822; former.employee@fabrikam.test".into(),
        action: "failed".into(),
        status: "5.1.1".into(),
        diagnostic: "smtp; 550 5.1.1 <former.employee@fabrikam.test>: Recipient address rejected: User unknown".into(),
        original_headers: "From: Contoso Support <support@contoso.test>\r\nTo: former.employee@fabrikam.test\r\nSubject: RE: Printer on 3rd floor not working\r\nMessage-ID: <reply-printer-0002@contoso.test>\r\n".into(),
    });
    out.push(bounce);
    // --- loop protection: internal mailbox to internal mailbox ---
    out.push(msg(M {
        mailbox: SUPPORT,
        folder: "inbox",
        minutes_ago: 2100,
        read: false,
        from: (HELPDESK, "Contoso Helpdesk"),
        to: SUPPORT,
        subject: "Ticket received: Password reset",
        text: "Your request has been received and logged.\n\nContoso Helpdesk",
        html: false,
        id: "loop-0010@contoso.test",
    }));
    // --- filler traffic (for paging, filters and ordering) ---
    let topics = [
        ("Outlook keeps asking for my password", PAT),
        ("Laptop battery swollen", LEE),
        ("Shared drive is read-only", DANA),
        ("Invoice query", SAM),
        ("Teams camera not detected", PAT),
        ("Request: second monitor", LEE),
        ("Wi-Fi slow in meeting room B", DANA),
        ("Cannot install software update", PAT),
        ("Phone not syncing email", LEE),
        ("Access to finance folder", DANA),
        ("Website contact form broken", SAM),
        ("Password reset please", PAT),
    ];
    for (i, (subject, from)) in topics.iter().enumerate() {
        let domain = from.0.split('@').nth(1).unwrap_or("example.test");
        let id = format!("filler-{:04}@{domain}", 100 + i);
        let text = format!(
            "Hello,\n\n{subject}. Could you have a look?\n\nRegards,\n{}",
            from.1
        );
        out.push(msg(M {
            mailbox: SUPPORT,
            folder: "inbox",
            minutes_ago: 2000 - (i as i64) * 120,
            read: i % 3 == 0,
            from: *from,
            to: SUPPORT,
            subject,
            text: &text,
            html: i % 2 == 0,
            id: &id,
        }));
    }
    // --- helpdesk@ (shared mailbox) ---
    let helpdesk = [
        ("Projector in boardroom flickers", PAT, false),
        ("New laptop for Lee", LEE, true),
        ("Northwind: printer toner order", DANA, false),
        ("Partnership enquiry", SAM, false),
        ("Email signature update", PAT, false),
        ("VPN certificate expired", LEE, false),
    ];
    for (i, (subject, from, read)) in helpdesk.iter().enumerate() {
        let domain = from.0.split('@').nth(1).unwrap_or("example.test");
        let id = format!("helpdesk-{:04}@{domain}", 200 + i);
        let text = format!("Hello helpdesk,\n\n{subject}.\n\nThanks,\n{}", from.1);
        out.push(msg(M {
            mailbox: HELPDESK,
            folder: "inbox",
            minutes_ago: 1500 - (i as i64) * 90,
            read: *read,
            from: *from,
            to: HELPDESK,
            subject,
            text: &text,
            html: i % 2 == 1,
            id: &id,
        }));
    }
    // --- personal mailboxes (for access-rule tests) ---
    out.push(msg(M {
        mailbox: "megan@contoso.test",
        folder: "inbox",
        minutes_ago: 600,
        read: false,
        from: ("alex@contoso.test", "Alex Wilber"),
        to: "megan@contoso.test",
        subject: "Lunch on Friday?",
        text: "Are you free for lunch on Friday?\n\nAlex",
        html: false,
        id: "lunch-0300@contoso.test",
    }));
    out.push(msg(M {
        mailbox: "alex@contoso.test",
        folder: "inbox",
        minutes_ago: 500,
        read: false,
        from: ("megan@contoso.test", "Megan Bowen"),
        to: "alex@contoso.test",
        subject: "Quarterly review slides",
        text: "Please send me your slides by Thursday.\n\nMegan",
        html: false,
        id: "slides-0301@contoso.test",
    }));
    // --- diego@ (the canary): mail no mail-to-ticket application has any business reading ---
    out.push(msg(M {
        mailbox: CANARY_MAILBOX,
        folder: "inbox",
        minutes_ago: 720,
        read: false,
        from: ("megan@contoso.test", "Megan Bowen"),
        to: CANARY_MAILBOX,
        subject: "Salary review: figures for the board (confidential)",
        text: "Diego,

The salary review figures are in the finance share. Please do not forward.

Megan",
        html: true,
        id: "salary-review-0400@contoso.test",
    }));
    out
}

fn contact(
    name: &str,
    email: &str,
    company: Option<&str>,
    title: Option<&str>,
    phone: &str,
) -> SeedContact {
    let mut parts = name.splitn(2, ' ');
    SeedContact {
        mailbox: SUPPORT.into(),
        display_name: name.into(),
        given_name: parts.next().map(str::to_owned),
        surname: parts.next().map(str::to_owned),
        email_addresses: vec![(name.into(), email.into())],
        company_name: company.map(str::to_owned),
        job_title: title.map(str::to_owned),
        business_phones: vec![phone.into()],
        ..SeedContact::default()
    }
}

const GIVEN: [&str; 30] = [
    "Avery",
    "Zoë",
    "José",
    "Łukasz",
    "Søren",
    "Renée",
    "Mia",
    "Noah",
    "Chloé",
    "François",
    "Jürgen",
    "Siobhán",
    "Olivia",
    "Liam",
    "Ines",
    "Mateo",
    "Aiko",
    "Priya",
    "Omar",
    "Hannah",
    "Björn",
    "Camille",
    "Diego",
    "Elif",
    "Farah",
    "Gabriel",
    "Hiroshi",
    "Isabel",
    "Jonas",
    "Kavya",
];
const SURNAMES: [&str; 30] = [
    "Müller",
    "García",
    "Nowak",
    "Jensen",
    "O'Brien",
    "Nguyễn",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Andersson",
    "Smith",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Fernández",
    "Tanaka",
    "Patel",
    "Haddad",
    "Schmidt",
    "Lindqvist",
    "Moreau",
    "Silva",
    "Yılmaz",
    "Khan",
    "Laurent",
    "Sato",
    "Costa",
    "Weber",
    "Iyer",
];
/// Companies and their mail domains: the first two match the sandbox PSA's sites.
const COMPANIES: [(&str, &str); 6] = [
    ("Fabrikam", "fabrikam.test"),
    ("Northwind Traders", "northwind.test"),
    ("Adatum", "adatum.test"),
    ("Tailspin Toys", "tailspin.test"),
    ("Litware", "litware.test"),
    ("Wingtip Toys", "wingtip.test"),
];
const TITLES: [&str; 8] = [
    "Office Manager",
    "Engineer",
    "Operations Lead",
    "Account Manager",
    "IT Coordinator",
    "Finance Director",
    "Receptionist",
    "Head of Procurement",
];
const DEPARTMENTS: [&str; 5] = ["Operations", "Finance", "IT", "Sales", "Facilities"];
const CITIES: [(&str, &str, &str); 4] = [
    ("Seattle", "WA", "98101"),
    ("Springfield", "IL", "62701"),
    ("Austin", "TX", "73301"),
    ("Portland", "OR", "97201"),
];

/// ASCII letters of a name for an address's local part (`Zoë` → `zoe`, `O'Brien` → `obrien`).
fn ascii_local(s: &str) -> String {
    s.chars()
        .filter_map(|c| {
            let c = c.to_lowercase().next().unwrap_or(c);
            let folded = match c {
                'à' | 'á' | 'â' | 'ä' | 'å' | 'ã' => 'a',
                'ç' => 'c',
                'è' | 'é' | 'ê' | 'ë' | 'ễ' => 'e',
                'ì' | 'í' | 'î' | 'ï' | 'ı' => 'i',
                'ł' => 'l',
                'ñ' => 'n',
                'ò' | 'ó' | 'ô' | 'ö' | 'ø' => 'o',
                'ù' | 'ú' | 'û' | 'ü' => 'u',
                'ý' | 'ÿ' => 'y',
                c if c.is_ascii_alphanumeric() => c,
                _ => return None,
            };
            Some(folded)
        })
        .collect()
}

/// A realistic address book of `count` contacts for `mailbox`, the same every time: most in
/// the default folder, some in *Suppliers* and *Customers/Key accounts*; names with accents;
/// companies whose domains match the sandbox PSA's sites and ones that do not; and what real
/// address books hold that an import must cope with — contacts with no address, with two or
/// three, the same address in two folders, an invalid address, 500-character notes.
pub fn generated_address_book(mailbox: &str, count: usize) -> Vec<SeedContact> {
    let mut out: Vec<SeedContact> = Vec::with_capacity(count);
    for i in 0..count {
        let given = GIVEN[i % GIVEN.len()];
        let surname = SURNAMES[(i / GIVEN.len() + i) % SURNAMES.len()];
        let round = i / (GIVEN.len() * SURNAMES.len());
        let (company, domain) = COMPANIES[(i / 3) % COMPANIES.len()];
        let name = format!("{given} {surname}");
        let local = format!(
            "{}.{}{}",
            ascii_local(given),
            ascii_local(surname),
            if round > 0 {
                round.to_string()
            } else {
                String::new()
            }
        );
        let folder = if i % 7 == 3 {
            Some("Customers/Key accounts".to_owned())
        } else if i % 5 == 1 {
            Some("Suppliers".to_owned())
        } else {
            None
        };
        let mut emails = vec![(name.clone(), format!("{local}@{domain}"))];
        if i % 11 == 4 {
            emails.push((name.clone(), format!("{local}@mail.test")));
        }
        if i % 22 == 4 {
            emails.push((name.clone(), format!("{}@{domain}", ascii_local(given))));
        }
        if i % 17 == 9 {
            emails.clear();
        }
        if i % 31 == 30 {
            emails = vec![(name.clone(), format!("{local} at {domain}"))];
        }
        let (city, state, postal) = CITIES[i % CITIES.len()];
        let mut c = SeedContact {
            mailbox: mailbox.into(),
            folder,
            display_name: name,
            given_name: Some(given.into()),
            surname: Some(surname.into()),
            email_addresses: emails,
            company_name: Some(company.into()),
            job_title: Some(TITLES[i % TITLES.len()].into()),
            department: Some(DEPARTMENTS[i % DEPARTMENTS.len()].into()),
            office_location: (i % 4 == 0).then(|| format!("Building {}", i % 9 + 1)),
            business_phones: vec![format!("+1 555 {:04}", 1000 + i % 9000)],
            mobile_phone: (i % 3 == 0).then(|| format!("+1 555 {:04}", 5000 + i % 5000)),
            business_address: Some(SeedAddress {
                street: Some(format!("{} Main St", 10 + i % 90)),
                city: Some(city.into()),
                state: Some(state.into()),
                country_or_region: Some("United States".into()),
                postal_code: Some(postal.into()),
            }),
            business_home_page: Some(format!("https://www.{domain}")),
            personal_notes: (i % 37 == 36).then(|| "Long note. ".repeat(46)[..500].to_owned()),
            ..SeedContact::default()
        };
        // The same person filed twice: in another folder, with the same address.
        if i % 29 == 28 && !out.is_empty() {
            let earlier = &out[i / 2];
            if !earlier.email_addresses.is_empty() {
                c = SeedContact {
                    folder: Some("Suppliers".into()),
                    ..earlier.clone()
                };
                if earlier.folder.as_deref() == Some("Suppliers") {
                    c.folder = None;
                }
            }
        }
        out.push(c);
    }
    out
}

/// How many contacts the default seed's generated address book of Contoso Support holds.
pub const SUPPORT_ADDRESS_BOOK: usize = 300;

impl Default for GraphSeed {
    fn default() -> Self {
        Self {
            tenant_id: TENANT_ID.into(),
            users: vec![
                user(SUPPORT_USER_ID, "support", "Contoso Support", false, None),
                user(
                    MEGAN_USER_ID,
                    "megan",
                    "Megan Bowen",
                    false,
                    Some("IT Administrator"),
                ),
                user(
                    ALEX_USER_ID,
                    "alex",
                    "Alex Wilber",
                    false,
                    Some("Marketing Assistant"),
                ),
                user(HELPDESK_USER_ID, "helpdesk", "Contoso Helpdesk", true, None),
                user(
                    DIEGO_USER_ID,
                    "diego",
                    "Diego Siciliani",
                    false,
                    Some("Chief Financial Officer"),
                ),
            ],
            messages: default_messages(),
            contacts: vec![
                contact(
                    "Pat Smith",
                    "pat@fabrikam.test",
                    Some("Fabrikam"),
                    Some("Office Manager"),
                    "+1 555 0101",
                ),
                contact(
                    "Lee Chen",
                    "lee@fabrikam.test",
                    Some("Fabrikam"),
                    Some("Engineer"),
                    "+1 555 0102",
                ),
                contact(
                    "Dana Whitaker",
                    "dana@northwind.test",
                    Some("Northwind Traders"),
                    Some("Operations Lead"),
                    "+1 555 0201",
                ),
                contact(
                    "Jordan Reyes",
                    "jordan@northwind.test",
                    Some("Northwind Traders"),
                    None,
                    "+1 555 0202",
                ),
                contact(
                    "Casey Morgan",
                    "casey@adatum.test",
                    Some("Adatum"),
                    Some("Account Manager"),
                    "+1 555 0301",
                ),
            ]
            .into_iter()
            .chain(generated_address_book(SUPPORT, SUPPORT_ADDRESS_BOOK))
            .collect(),
            grants: vec![DelegateGrant {
                mailbox: HELPDESK.into(),
                delegate: "megan@contoso.test".into(),
                rights: vec![MailboxRight::FullAccess, MailboxRight::SendAs],
            }],
            // As in a new tenant: nothing restricts the webhooks application (the control
            // API's `POST /graph/access-policies` applies a policy at run time).
            policies: Vec::new(),
            base_time: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::StaticTokens;

    #[test]
    fn default_seed_round_trips_through_json() {
        let json = serde_json::to_string(&GraphSeed::default()).unwrap();
        assert!(json.contains("content_base64"));
        let back: GraphSeed = serde_json::from_str(&json).unwrap();
        let sb = crate::GraphSandbox::try_new(
            back,
            std::sync::Arc::new(StaticTokens::new()),
            mailroom_clock::system(),
        )
        .unwrap();
        let default = crate::GraphSandbox::new(
            GraphSeed::default(),
            std::sync::Arc::new(StaticTokens::new()),
            mailroom_clock::system(),
        );
        assert_eq!(sb.users(), default.users());
        let ids = |s: &crate::GraphSandbox| {
            s.messages("support@contoso.test")
                .into_iter()
                .map(|m| m.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&sb), ids(&default), "ids are deterministic");
        assert_eq!(default.messages(HELPDESK).len(), 6);
    }

    #[test]
    fn minimal_json_seed_and_inconsistent_seed() {
        let seed: GraphSeed = serde_json::from_value(serde_json::json!({
            "users": [{"id": "u1", "userPrincipalName": "a@x.test", "mail": "a@x.test", "displayName": "A"}],
            "messages": [{"mailbox": "a@x.test", "minutesAgo": 5, "mail": {
                "to": "a@x.test", "from": "b@y.test", "subject": "hi",
                "attachments": [{"name": "f.txt", "content_type": "text/plain", "content_base64": "aGk="}]
            }}]
        }))
        .unwrap();
        assert_eq!(seed.tenant_id, TENANT_ID);
        assert_eq!(seed.messages[0].mail.attachments[0].content, b"hi");
        let sb = crate::GraphSandbox::try_new(
            seed.clone(),
            std::sync::Arc::new(StaticTokens::new()),
            mailroom_clock::system(),
        )
        .unwrap();
        assert_eq!(sb.messages("u1").len(), 1);
        let mut bad = seed;
        bad.messages[0].mailbox = "nobody@x.test".into();
        let err = crate::GraphSandbox::try_new(
            bad,
            std::sync::Arc::new(StaticTokens::new()),
            mailroom_clock::system(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("nobody@x.test"));
    }
}
