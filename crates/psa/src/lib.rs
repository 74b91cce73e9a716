//! HaloPSA API client for Mailroom (GUI-free).
//!
//! [`PsaClient`] talks to one HaloPSA instance with an API application of type "Client ID and
//! Secret (Services)": it discovers the authorisation server (`GET /api/authinfo`, falling back
//! to `{instance}/auth`), obtains client-credentials tokens, and offers typed operations for the
//! mail-to-ticket engine (tickets, actions, users, clients, sites, lookups, attachments) and the
//! integration wizard (agent, webhooks, webhook deliveries, custom tabs, certificates, probe).
//!
//! Invariants:
//! - **Tokens**: one cached token per client, shared by clones; renewed 60 s before expiry; on a
//!   401 it is invalidated and the call retried once with a fresh token.
//! - **Rate limit**: every HTTP exchange (token requests included) first takes a slot in a
//!   client-side rolling-window limiter ([`RollingWindow`], default 300 per 5 minutes), so the
//!   client alone never exceeds the configured limit. A 429 from HaloPSA (the limit is shared
//!   with other integrations) is retried after `Retry-After`, or else once the oldest request
//!   of ours has left the window, or else with exponential back-off; 5xx and connection
//!   failures are retried with back-off; attempts are bounded ([`RetryPolicy`]). All waits go
//!   through a [`Sleeper`] and all time comes from the injected clock.
//! - **Conventions**: POST bodies are one-element arrays and an object or an array is accepted
//!   back; `id` present means update; paged lists are walked with
//!   `pageinate=true&page_size=&page_no=` until `record_count`; lookups accept bare arrays.
//! - **Errors**: every failure is a [`PsaError`] with a closed [`ErrorKind`] and a message for
//!   the admin that includes HaloPSA's own text, parsed from any of its error-body shapes.
//! - **Secrets**: the client secret and tokens are [`Secret`]s (never in `Debug` output); every
//!   exchange is handed to [`mailroom_trace::record`], which redacts credentials.
//! - **Ids** are `i64`, read leniently (HaloPSA sometimes writes `95.0`) and written as integers.

mod client;
mod config;
mod error;
pub mod ids;
mod limiter;
mod lookup;
pub mod model;
pub mod paging;
mod throttle;

pub use client::{canonical_message_id, normalize_message_id, ProbeReport, PsaClient, TicketQuery};
pub use config::{MessageIdLookup, PsaConfig, RetryPolicy, RollingWindow, Secret};
pub use error::{kind_for_status, parse_error_body, ErrorKind, PsaError};
pub use limiter::{Permit, RollingLimiter, Sleeper, TokioSleeper};
pub use lookup::ActionLookup;
pub use model::*;
pub use reqwest::Method;
pub use throttle::ThrottleState;
