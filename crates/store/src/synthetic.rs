//! A realistic inbound log of any size, for `mailroom bench log`: emails across three mailboxes
//! in the states a working installation has, each with its attempts, their HTTP exchanges (a
//! Graph read and a PSA write, with bodies of the usual size) and processing log lines. The same
//! seed gives the same log; the figures the benchmark queries with come back with it.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Row;

use crate::backend::{insert_values, value_rows};
use crate::Arg;

use crate::inbound::ts;
use crate::{Cloud, CredentialKind, MailboxMethod, NewMailbox, Result, Store};

/// A word about one subject in six has (a common search).
pub const COMMON_WORD: &str = "invoice";
/// A word only [`RARE_ROWS`] subjects have (a rare search).
pub const RARE_WORD: &str = "quokka";
/// How many subjects have [`RARE_WORD`].
pub const RARE_ROWS: usize = 12;

/// What was built, and the parameters the benchmark's queries use.
#[derive(Debug, Clone)]
pub struct SyntheticLog {
    pub mailbox_ids: Vec<String>,
    pub rows: usize,
    /// The `(received_at, id)` of the entry nine tenths down the log: a deep page's keyset.
    pub deep_page_before: (DateTime<Utc>, i64),
    /// An email with the usual attempts, requests and log (for the detail view).
    pub sample_email_id: i64,
    /// The ticket the sample email created (the log's ticket filter).
    pub sample_ticket_id: i64,
    /// A sender with one email in fifty (a monitoring system's alerts): the sender filter's
    /// hardest case.
    pub busy_sender: String,
}

/// The sender of one email in fifty.
const BUSY_SENDER: &str = "alerts@monitoring.test";

const SUBJECTS: [&str; 12] = [
    "Printer on the {n} floor not working",
    "Cannot log in to the VPN",
    "RE: Laptop replacement for {name}",
    "Outlook keeps asking for my password",
    "New starter on Monday: {name}",
    "Invoice {n} overdue",
    "Shared drive is full",
    "RE: RE: Wi-Fi drops in meeting room {n}",
    "Phone system: voicemail not arriving",
    "Password reset for {name}",
    "FW: invoice query from accounts",
    "Teams meeting audio problems",
];
const NAMES: [&str; 10] = [
    "Pat Smith",
    "Lee Chen",
    "Dana Whitaker",
    "Jordan Reyes",
    "Sam Taylor",
    "Alex Kim",
    "Robin Fox",
    "Casey Morgan",
    "Morgan Lee",
    "Jamie Park",
];
const COMPANIES: [&str; 8] = [
    "fabrikam",
    "northwind",
    "adatum",
    "tailspin",
    "litware",
    "proseware",
    "woodgrove",
    "contoso",
];

/// One email of a batch, before it is inserted.
struct Picked {
    k: usize,
    state: &'static str,
    mailbox: usize,
    from: String,
    name: &'static str,
    subject: String,
    received: DateTime<Utc>,
}

fn mailbox(name: &str, address: &str) -> NewMailbox {
    NewMailbox {
        name: name.into(),
        method: MailboxMethod::Webhook,
        cloud: Cloud::Global,
        authority_url: None,
        graph_url: None,
        tenant_id: "6f1c2d3e-0a4b-4c5d-8e9f-0123456789ab".into(),
        client_id: "c0ffee00-0000-4000-8000-000000000003".into(),
        credential_kind: CredentialKind::Secret,
        shared_mailbox: None,
        mailbox_address: Some(address.into()),
    }
}

/// State of the `i`-th email: mostly done, some skipped, a few failed, retrying or pending.
fn state(roll: u32) -> &'static str {
    match roll {
        0..=892 => "done",
        893..=962 => "skipped",
        963..=987 => "failed",
        988..=997 => "retrying",
        _ => "seen",
    }
}

impl Store {
    /// Adds three mailboxes and `rows` emails received one every 30 s up to `now`, with their
    /// attempts, requests and log lines, in batches of a few thousand per transaction.
    pub async fn fill_synthetic_log(
        &self,
        rows: usize,
        now: DateTime<Utc>,
    ) -> Result<SyntheticLog> {
        let mut mailbox_ids = Vec::new();
        for (name, address) in [
            ("Service desk", "servicedesk@contoso.test"),
            ("Sales", "sales@contoso.test"),
            ("Billing", "billing@contoso.test"),
        ] {
            mailbox_ids.push(self.add_mailbox(&mailbox(name, address)).await?.id);
        }
        let mut rng = StdRng::seed_from_u64(14);
        let first = now - Duration::seconds(30 * rows as i64);
        let graph_body = format!(
            "{{\"id\":\"AAMkAGI2{}\",\"subject\":\"…\",\"from\":{{\"emailAddress\":{{\"address\":\"…\"}}}},\"body\":{{\"contentType\":\"html\",\"content\":\"{}\"}}}}",
            "x".repeat(40),
            "<p>Hello team, …</p>".repeat(20)
        );
        let psa_request = format!(
            "[{{\"summary\":\"…\",\"details\":\"{}\",\"tickettype_id\":1,\"client_id\":12,\"site_id\":31,\"user_id\":4411}}]",
            "Hello team, … ".repeat(20)
        );
        let psa_response = "{\"id\":73311,\"summary\":\"…\",\"status_id\":1,\"tickettype_id\":1}";
        let headers =
            "[[\"content-type\",\"application/json\"],[\"authorization\",\"Bearer [redacted]\"]]";
        let mut deep_page_before = None;
        let mut sample_email_id = 0;
        let mut sample_ticket_id = 0;
        const BATCH: usize = 400;
        let mut i = 0;
        while i < rows {
            let n = BATCH.min(rows - i);
            let mut tx = self.pool().begin().await?;
            let emails_head =
                "INSERT INTO inbound_emails (mailbox_id, dedupe_key, graph_message_id, internet_message_id,
                 conversation_id, received_at, from_address, from_name, subject, state, outcome,
                 skip_reason, ticket_id, attempts, error_code, error_message, created_at, updated_at) ";
            let mut picked = Vec::with_capacity(n);
            for k in i..i + n {
                let roll: u32 = rng.gen_range(0..1000);
                let st = state(roll);
                let mailbox = match rng.gen_range(0..10) {
                    0..=5 => 0,
                    6..=8 => 1,
                    _ => 2,
                };
                let name = NAMES[rng.gen_range(0..NAMES.len())];
                let company = COMPANIES[rng.gen_range(0..COMPANIES.len())];
                let mut from = format!(
                    "{}{}@{company}.test",
                    name.split(' ').next().unwrap_or("user").to_lowercase(),
                    rng.gen_range(0..400)
                );
                if k % 50 == 3 {
                    from = BUSY_SENDER.to_string();
                }
                let mut subject = SUBJECTS[rng.gen_range(0..SUBJECTS.len())]
                    .replace("{n}", &rng.gen_range(1..9999).to_string())
                    .replace("{name}", name);
                if k % (rows / RARE_ROWS).max(1) == 7 % rows.max(1) {
                    subject.push_str(&format!(" ({RARE_WORD} project)"));
                }
                let received = first + Duration::seconds(30 * k as i64);
                picked.push(Picked {
                    k,
                    state: st,
                    mailbox,
                    from,
                    name,
                    subject,
                    received,
                });
            }
            let emails_rows = value_rows(
                picked.iter(),
                |Picked {
                     k,
                     state: st,
                     mailbox,
                     from,
                     name,
                     subject,
                     received,
                 }| {
                    let done = *st == "done";
                    vec![
                        Arg::from(&mailbox_ids[*mailbox]),
                        Arg::from(format!("<m{k}@synthetic.test>")),
                        Arg::from(format!("AAMkAGI2{k:012}")),
                        Arg::from(format!("<m{k}@synthetic.test>")),
                        Arg::from(format!("conv-{}", k / 3)),
                        Arg::from(ts(*received)),
                        Arg::from(from.as_str()),
                        Arg::from(*name),
                        Arg::from(subject.as_str()),
                        Arg::from(*st),
                        Arg::from(done.then_some("ticket_created")),
                        Arg::from((*st == "skipped").then_some("auto_reply")),
                        Arg::from(done.then_some(10_000 + *k as i64)),
                        Arg::from(if *st == "seen" { 0 } else { 1 }),
                        Arg::from(
                            (*st == "failed" || *st == "retrying").then_some("psa_unavailable"),
                        ),
                        Arg::from(
                            (*st == "failed" || *st == "retrying")
                                .then_some("HaloPSA answered 503 Service Unavailable."),
                        ),
                        Arg::from(ts(*received)),
                        Arg::from(ts(*received)),
                    ]
                },
            );
            let ids: Vec<i64> = insert_values(emails_head, emails_rows, " RETURNING id")
                .query()
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let attempted: Vec<(i64, &Picked)> = ids
                .iter()
                .copied()
                .zip(picked.iter())
                .filter(|(_, p)| p.state != "seen")
                .collect();
            for (id, p) in ids.iter().zip(picked.iter()) {
                if p.k == rows / 10 {
                    deep_page_before = Some((p.received, *id));
                }
                if p.state == "done" && sample_email_id == 0 {
                    sample_email_id = *id;
                    sample_ticket_id = 10_000 + p.k as i64;
                }
            }
            if !attempted.is_empty() {
                let attempts_head =
                    "INSERT INTO processing_attempts (email_id, number, trigger, started_at, finished_at,
                     result, error_code, error_message) ";
                let attempts_rows = value_rows(attempted.iter(), |(id, p)| {
                    let result = match p.state {
                        "done" => "processed",
                        "skipped" => "skipped",
                        _ => "failed",
                    };
                    vec![
                        Arg::from(*id),
                        Arg::from(1),
                        Arg::from("webhook"),
                        Arg::from(ts(p.received)),
                        Arg::from(ts(p.received + Duration::milliseconds(840))),
                        Arg::from(result),
                        Arg::from((result == "failed").then_some("psa_unavailable")),
                        Arg::from(
                            (result == "failed")
                                .then_some("HaloPSA answered 503 Service Unavailable."),
                        ),
                    ]
                });
                let attempt_ids: Vec<i64> =
                    insert_values(attempts_head, attempts_rows, " RETURNING id")
                        .query()
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(|row| row.try_get(0))
                        .collect::<Result<_, _>>()?;
                let requests_head =
                    "INSERT INTO attempt_requests (attempt_id, seq, service, method, url, status,
                     duration_ms, started_at, request_headers, request_body, response_headers,
                     response_body, error) ";
                let requests_rows = value_rows(
                    attempt_ids
                        .iter()
                        .zip(attempted.iter())
                        .flat_map(|(a, (_, p))| [(*a, 0, p), (*a, 1, p)]),
                    |(attempt, seq, p)| {
                        let graph = seq == 0;
                        let failed = p.state == "failed" || p.state == "retrying";
                        vec![
                            Arg::from(attempt),
                            Arg::from(seq),
                            Arg::from(if graph { "graph" } else { "psa" }),
                            Arg::from(if graph { "GET" } else { "POST" }),
                            Arg::from(if graph {
                                format!(
                                    "https://graph.microsoft.com/v1.0/users/{}/messages/AAMkAGI2{:012}?$expand=attachments",
                                    "servicedesk@contoso.test", p.k
                                )
                            } else {
                                "https://contoso.halopsa.com/api/Tickets".to_string()
                            }),
                            Arg::from(if !graph && failed { 503 } else { 200 }),
                            Arg::from(if graph { 180 } else { 420 }),
                            Arg::from(ts(p.received)),
                            Arg::from(headers),
                            Arg::from((!graph).then_some(psa_request.as_str())),
                            Arg::from(headers),
                            Arg::from(if graph {
                                graph_body.as_str()
                            } else {
                                psa_response
                            }),
                            Arg::from(None::<String>),
                        ]
                    },
                );
                insert_values(requests_head, requests_rows, "")
                    .query()
                    .execute(&mut *tx)
                    .await?;
                let log_head = "INSERT INTO attempt_log (attempt_id, seq, at, level, message) ";
                let log_rows = value_rows(
                    attempt_ids
                        .iter()
                        .zip(attempted.iter())
                        .flat_map(|(a, (_, p))| (0..4).map(move |seq| (*a, seq, p))),
                    |(attempt, seq, p)| {
                        let message = match seq {
                            0 => {
                                format!("Attempt 1 (webhook) for \"{}\" from {}", p.subject, p.from)
                            }
                            1 => format!("Sender {} matched user 4411 on site 31.", p.from),
                            2 => "Created ticket 73311.".to_string(),
                            _ => "Done.".to_string(),
                        };
                        vec![
                            Arg::from(attempt),
                            Arg::from(seq),
                            Arg::from(ts(p.received + Duration::milliseconds(200 * seq))),
                            Arg::from("info"),
                            Arg::from(message),
                        ]
                    },
                );
                insert_values(log_head, log_rows, "")
                    .query()
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            i += n;
        }
        Ok(SyntheticLog {
            mailbox_ids,
            rows,
            deep_page_before: deep_page_before.unwrap_or((now, i64::MAX)),
            sample_email_id,
            sample_ticket_id,
            busy_sender: BUSY_SENDER.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbound::{LogQuery, LogStatus, SEARCH_LIST_MAX};

    /// Pages through a log query to its end.
    async fn all_pages(store: &Store, q: LogQuery) -> Vec<i64> {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .inbound_log(&LogQuery {
                    before,
                    limit: Some(100),
                    ..q.clone()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some((last.received_at, last.id));
            out.extend(page.iter().map(|e| e.id));
        }
        out
    }

    /// The same answer by brute force: every entry whose sender or subject has the word.
    async fn brute_force(store: &Store, word: &str, mailbox: Option<&str>) -> Vec<i64> {
        let like = format!("%{}%", word.to_lowercase());
        sqlx::query_scalar(
            "SELECT id FROM inbound_emails
             WHERE (lower(subject) LIKE $1 OR lower(from_address) LIKE $2 OR lower(from_name) LIKE $3)
               AND ($4 IS NULL OR mailbox_id = $5)
             ORDER BY received_at DESC, id DESC",
        )
        .bind(&like)
        .bind(&like)
        .bind(&like)
        .bind(mailbox)
        .bind(mailbox)
        .fetch_all(store.pool())
        .await
        .unwrap()
    }

    crate::testing::on_both!(searches_pages_and_counts_answer_what_a_scan_of_the_table_would);
    async fn searches_pages_and_counts_answer_what_a_scan_of_the_table_would(store: Store) {
        let built = store.fill_synthetic_log(15_000, Utc::now()).await.unwrap();

        // A word in more subjects than a search fetches by id: the log is walked.
        let common = brute_force(&store, COMMON_WORD, None).await;
        assert!(common.len() as i64 > SEARCH_LIST_MAX, "{}", common.len());
        let search = |mailbox: Option<String>, word: &str| LogQuery {
            search: Some(word.to_string()),
            mailbox_id: mailbox,
            ..Default::default()
        };
        assert_eq!(all_pages(&store, search(None, COMMON_WORD)).await, common);
        let second = built.mailbox_ids[1].clone();
        assert_eq!(
            all_pages(&store, search(Some(second.clone()), COMMON_WORD)).await,
            brute_force(&store, COMMON_WORD, Some(&second)).await
        );
        // A rare word: its few entries, fetched by id.
        let rare = all_pages(&store, search(None, RARE_WORD)).await;
        assert_eq!(rare.len(), RARE_ROWS);
        assert_eq!(rare, brute_force(&store, RARE_WORD, None).await);

        // Paging without a search visits every entry once, newest first.
        let everything = all_pages(&store, LogQuery::default()).await;
        assert_eq!(everything.len(), 15_000);
        let failed = all_pages(
            &store,
            LogQuery {
                status: Some(LogStatus::Failed),
                mailbox_id: Some(second.clone()),
                ..Default::default()
            },
        )
        .await;
        let failed_by_scan: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM inbound_emails WHERE state = 'failed' AND mailbox_id = $1
             ORDER BY received_at DESC, id DESC",
        )
        .bind(&second)
        .fetch_all(store.pool())
        .await
        .unwrap();
        assert_eq!(failed, failed_by_scan);

        // Sender, ticket and time range, alone and with the other filters, page through the
        // same entries a scan finds.
        let scan = |filter: &str, binds: Vec<String>| {
            let store = store.clone();
            let sql = format!(
                "SELECT id FROM inbound_emails WHERE {filter} ORDER BY received_at DESC, id DESC"
            );
            async move {
                let mut q = sqlx::query_scalar::<_, i64>(&sql);
                for b in binds {
                    q = q.bind(b);
                }
                q.fetch_all(store.pool()).await.unwrap()
            }
        };
        let busy = built.busy_sender.clone();
        let from_busy = all_pages(
            &store,
            LogQuery {
                sender: Some(busy.to_uppercase()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(from_busy.len(), 300);
        assert_eq!(
            from_busy,
            scan("from_address = $1", vec![busy.clone()]).await
        );
        let busy_processed_second = all_pages(
            &store,
            LogQuery {
                sender: Some(busy.clone()),
                mailbox_id: Some(second.clone()),
                status: Some(LogStatus::Processed),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            busy_processed_second,
            scan(
                "from_address = $1 AND mailbox_id = $2 AND state = 'done'",
                vec![busy.clone(), second.clone()]
            )
            .await
        );
        let ticket = all_pages(
            &store,
            LogQuery {
                ticket_id: Some(built.sample_ticket_id),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(ticket, vec![built.sample_email_id]);
        let (since, until) = {
            let ids: Vec<(String,)> = sqlx::query_as(
                "SELECT received_at FROM inbound_emails ORDER BY received_at LIMIT 2 OFFSET 5000",
            )
            .fetch_all(store.pool())
            .await
            .unwrap();
            let since = crate::inbound::parse_ts(&ids[0].0).unwrap();
            (since, since + Duration::hours(6))
        };
        let window = all_pages(
            &store,
            LogQuery {
                since: Some(since),
                until: Some(until),
                search: Some(COMMON_WORD.into()),
                ..Default::default()
            },
        )
        .await;
        let in_window = scan(
            "received_at >= $1 AND received_at < $2
             AND (lower(subject) LIKE $3 OR lower(from_address) LIKE $3 OR lower(from_name) LIKE $3)",
            vec![
                crate::inbound::ts(since),
                crate::inbound::ts(until),
                format!("%{}%", COMMON_WORD.to_lowercase()),
            ],
        )
        .await;
        assert!(!in_window.is_empty());
        assert_eq!(window, in_window);

        // The kept counters follow inserts, state changes and deletes.
        let by_scan = |mailbox: Option<String>| {
            let store = store.clone();
            async move {
                let mut rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM inbound_emails
                     WHERE ($1 IS NULL OR mailbox_id = $2) GROUP BY state",
                )
                .bind(&mailbox)
                .bind(&mailbox)
                .fetch_all(store.pool())
                .await
                .unwrap();
                rows.sort();
                rows
            }
        };
        let kept = |mailbox: Option<String>| {
            let store = store.clone();
            async move {
                let mut rows: Vec<(String, i64)> = store
                    .status_counts(mailbox.as_deref())
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(s, n)| {
                        (
                            serde_json::to_value(s)
                                .unwrap()
                                .as_str()
                                .unwrap()
                                .to_string(),
                            n,
                        )
                    })
                    .collect();
                rows.sort();
                rows
            }
        };
        let as_statuses = |rows: Vec<(String, i64)>| {
            let mut out: Vec<(String, i64)> = Vec::new();
            for (state, n) in rows {
                let status = crate::inbound::EmailState::parse(&state).unwrap().status();
                let name = serde_json::to_value(status)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string();
                match out.iter_mut().find(|(s, _)| *s == name) {
                    Some(e) => e.1 += n,
                    None => out.push((name, n)),
                }
            }
            out.sort();
            out
        };
        assert_eq!(kept(None).await, as_statuses(by_scan(None).await));
        let now = Utc::now();
        for id in &failed[..3] {
            store.requeue(*id, now).await.unwrap();
        }
        store.mark_done(failed[3], now).await.unwrap();
        assert_eq!(
            kept(Some(second.clone())).await,
            as_statuses(by_scan(Some(second.clone())).await)
        );
        let unfinished: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM inbound_emails WHERE mailbox_id = $1
               AND state IN ('seen', 'claimed', 'psa_written', 'retrying')",
        )
        .bind(&second)
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(
            store.unfinished_count(Some(&second)).await.unwrap(),
            unfinished
        );
        store.delete_mailbox(&second).await.unwrap();
        assert!(kept(Some(second)).await.is_empty());
        assert_eq!(kept(None).await, as_statuses(by_scan(None).await));
    }
}
