//! The API resources the sandbox serves and their static properties.

/// How a list endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStyle {
    /// `{page_no, page_size, record_count, <plural>: [...]}`.
    Paged(&'static str),
    /// A bare JSON array.
    Bare,
}

/// How a resource is identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// Sequential integers.
    Int,
    /// GUIDs.
    Uuid,
}

/// Which permission a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Any valid token.
    Any,
    /// `read:<area>`.
    Read(&'static str),
    /// `edit:<area>`.
    Edit(&'static str),
    /// `admin`.
    Admin,
}

/// A resource under `/api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Res {
    Tickets,
    Actions,
    Users,
    Client,
    Site,
    Agent,
    TicketType,
    Status,
    Priority,
    Outcome,
    Attachment,
    Webhook,
    WebhookEvent,
    Notification,
    Tabs,
    Certificate,
    Application,
}

impl Res {
    pub const ALL: [Res; 17] = [
        Res::Tickets,
        Res::Actions,
        Res::Users,
        Res::Client,
        Res::Site,
        Res::Agent,
        Res::TicketType,
        Res::Status,
        Res::Priority,
        Res::Outcome,
        Res::Attachment,
        Res::Webhook,
        Res::WebhookEvent,
        Res::Notification,
        Res::Tabs,
        Res::Certificate,
        Res::Application,
    ];

    /// Resolves a path segment case-insensitively (`tickets` == `Tickets`).
    pub fn from_segment(segment: &str) -> Option<Res> {
        Res::ALL
            .into_iter()
            .find(|r| r.path().eq_ignore_ascii_case(segment))
    }

    /// The canonical path segment.
    pub fn path(self) -> &'static str {
        match self {
            Res::Tickets => "Tickets",
            Res::Actions => "Actions",
            Res::Users => "Users",
            Res::Client => "Client",
            Res::Site => "Site",
            Res::Agent => "Agent",
            Res::TicketType => "TicketType",
            Res::Status => "Status",
            Res::Priority => "Priority",
            Res::Outcome => "Outcome",
            Res::Attachment => "Attachment",
            Res::Webhook => "Webhook",
            Res::WebhookEvent => "WebhookEvent",
            Res::Notification => "Notification",
            Res::Tabs => "Tabs",
            Res::Certificate => "Certificate",
            Res::Application => "Application",
        }
    }

    /// The OpenAPI component schema of one record.
    pub fn schema(self) -> &'static str {
        match self {
            Res::Tickets => "Faults",
            Res::Actions => "Actions",
            Res::Users => "Users",
            Res::Client => "Area",
            Res::Site => "Site",
            Res::Agent => "Uname",
            Res::TicketType => "RequestType",
            Res::Status => "TStatus",
            Res::Priority => "Policy",
            Res::Outcome => "TOutcome",
            Res::Attachment => "Attachment",
            Res::Webhook => "Webhook",
            Res::WebhookEvent => "WebhookEvent",
            Res::Notification => "UnameNotification",
            Res::Tabs => "Tabname",
            Res::Certificate => "Certificate",
            Res::Application => "NHD_Identity_Application",
        }
    }

    /// List envelope (reference §2).
    pub fn list_style(self) -> ListStyle {
        match self {
            Res::Tickets => ListStyle::Paged("tickets"),
            Res::Actions => ListStyle::Paged("actions"),
            Res::Users => ListStyle::Paged("users"),
            Res::Client => ListStyle::Paged("clients"),
            Res::Site => ListStyle::Paged("sites"),
            Res::Attachment => ListStyle::Paged("attachments"),
            // [U] plural key of the delivery log.
            Res::WebhookEvent => ListStyle::Paged("webhookevents"),
            _ => ListStyle::Bare,
        }
    }

    /// Identifier type.
    pub fn id_kind(self) -> IdKind {
        match self {
            Res::Webhook | Res::WebhookEvent | Res::Priority | Res::Application => IdKind::Uuid,
            _ => IdKind::Int,
        }
    }

    /// Permission for reads.
    pub fn read_need(self) -> Need {
        match self {
            Res::Tickets | Res::Actions | Res::Attachment => Need::Read("tickets"),
            Res::Users | Res::Client | Res::Site => Need::Read("customers"),
            Res::Agent | Res::TicketType | Res::Status | Res::Priority | Res::Outcome => Need::Any,
            Res::Webhook
            | Res::WebhookEvent
            | Res::Notification
            | Res::Tabs
            | Res::Certificate
            | Res::Application => Need::Admin,
        }
    }

    /// Permission for writes.
    pub fn edit_need(self) -> Need {
        match self {
            Res::Tickets | Res::Actions | Res::Attachment => Need::Edit("tickets"),
            Res::Users | Res::Client | Res::Site => Need::Edit("customers"),
            _ => Need::Admin,
        }
    }
}
