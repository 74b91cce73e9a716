//! Batched PSA writes: the new tickets of emails processed at the same time go to the PSA in
//! one `POST /Tickets` of several records, their actions (replies) in one `POST /Actions`, and
//! the users created for their new senders in one `POST /Users` (issue 15), instead of one
//! request each. Users are keyed by their email address where tickets and actions are keyed
//! by Message-ID, and have their own slots (an attempt may still create a user until its plan
//! says it will not).
//!
//! There is no batching task. The first attempt that wants a ticket while no batch is open
//! opens one and leads it: it waits — never longer than [`BatchConfig::max_wait`] — while other
//! attempts in flight may still join (see [`WriteSlot`]), then sends the batch and hands each
//! member its answer. A lone email (a webhook, an idle mailbox) has nobody to wait for and is
//! sent at once; nothing is held back to fill a batch.
//!
//! Answers are matched to members by the Message-ID each ticket carries
//! (`email_message_id`), never by position: HaloPSA may answer a list with every record or
//! with one ([U], reference §2), so a member missing from the answer is told so and looks its
//! ticket up, exactly as after a crash. A batch refused as invalid (400) is settled so that
//! the refused record fails alone with its own error and the others go through, none twice
//! (see [`send`]).
//!
//! Invariants: every member stored its write intent before it joined (the caller's job), so
//! a batch lost anywhere — a crash, a stop, a dropped leader — is reconciled by the next
//! attempt; a batch holds at most one email of a conversation, because a conversation's emails
//! are processed one after the other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::future::Future;

use mailroom_psa::{
    normalize_message_id, Action, ErrorKind as PsaKind, NewAction, NewTicket, NewUser, PsaClient,
    PsaError, Ticket, User,
};
use mailroom_trace::{Collector, HttpExchange};
use tokio::sync::oneshot;

/// How batches form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most records in one POST (1 turns batching off).
    pub max_records: usize,
    /// Most bytes of JSON in one POST: attachments travel inside the ticket, so a large email
    /// makes a small batch (one larger than this goes alone).
    pub max_bytes: usize,
    /// Longest time the first member waits for others to join.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_records: 20,
            max_bytes: 8 * 1024 * 1024,
            max_wait: Duration::from_millis(250),
        }
    }
}

/// A kind of record written in batches: how a batch is posted, how an answered record names
/// its email (the Message-ID it carries), and how a record is looked up.
pub(super) trait BatchRecord: Clone + serde::Serialize + Send + Sync + 'static {
    type Created: Send + 'static;
    /// What the key of a record is, for messages ("Message-ID", "email address").
    const KEY_NAME: &'static str = "Message-ID";
    fn post(
        psa: &PsaClient,
        records: &[Self],
    ) -> impl Future<Output = Result<Vec<Self::Created>, PsaError>> + Send;
    fn created_key(created: &Self::Created) -> Option<String>;
    /// The record created for Message-ID `key`, if any.
    fn lookup(
        psa: &PsaClient,
        record: &Self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Self::Created>, PsaError>> + Send;
}

impl BatchRecord for NewTicket {
    type Created = Ticket;
    async fn post(psa: &PsaClient, records: &[Self]) -> Result<Vec<Ticket>, PsaError> {
        psa.create_tickets(records).await
    }
    fn created_key(created: &Ticket) -> Option<String> {
        created
            .email_message_id
            .clone()
            .or_else(|| created.internet_message_id.clone())
    }
    /// The oldest ticket with that Message-ID, should there be two.
    async fn lookup(psa: &PsaClient, _: &Self, key: &str) -> Result<Option<Ticket>, PsaError> {
        Ok(psa
            .find_tickets_by_message_id(key)
            .await?
            .into_iter()
            .min_by_key(|t| t.id))
    }
}

impl BatchRecord for NewAction {
    type Created = Action;
    async fn post(psa: &PsaClient, records: &[Self]) -> Result<Vec<Action>, PsaError> {
        psa.create_actions(records).await
    }
    fn created_key(created: &Action) -> Option<String> {
        created.email_message_id.clone()
    }
    /// The action with that Message-ID on the record's ticket (none when the ticket does not
    /// exist: that is what a batch with this record may have been refused for).
    async fn lookup(psa: &PsaClient, record: &Self, key: &str) -> Result<Option<Action>, PsaError> {
        let wanted = normalize_message_id(key);
        let actions = match psa.list_actions(record.ticket_id).await {
            Ok(actions) => actions,
            Err(e) if matches!(e.kind, PsaKind::NotFound | PsaKind::Validation) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(actions
            .into_iter()
            .filter(|a| {
                a.email_message_id
                    .as_deref()
                    .is_some_and(|m| normalize_message_id(m) == wanted)
            })
            .min_by_key(|a| a.id))
    }
}

impl BatchRecord for NewUser {
    type Created = User;
    const KEY_NAME: &'static str = "email address";
    async fn post(psa: &PsaClient, records: &[Self]) -> Result<Vec<User>, PsaError> {
        psa.create_users(records).await
    }
    fn created_key(created: &User) -> Option<String> {
        created.emailaddress.clone()
    }
    /// The user with that email address (an active one first, then the oldest).
    async fn lookup(psa: &PsaClient, _: &Self, key: &str) -> Result<Option<User>, PsaError> {
        let found = psa.find_users_by_email(key, None).await?;
        Ok(found
            .iter()
            .filter(|u| !u.inactive.unwrap_or(false))
            .min_by_key(|u| u.id)
            .or_else(|| found.iter().min_by_key(|u| u.id))
            .cloned())
    }
}

/// " in one request with N other <what>" for a record created in a batch of `batch`, else "".
pub(super) fn shared_with(batch: usize, what: &str) -> String {
    if batch > 1 {
        format!(" in one request with {} other {what}", batch - 1)
    } else {
        String::new()
    }
}

/// What a member of a batch learns: its record was created by a POST of `batch` records
/// (listed in HaloPSA's answer, or found by its Message-ID when the answer did not list it).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Created<C> {
    pub(super) record: Box<C>,
    pub(super) batch: usize,
}

struct Member<R: BatchRecord> {
    record: R,
    key: String,
    /// The requests made for this member (its batch's POSTs, its lookup): each member's
    /// attempt records them as its own.
    exchanges: Vec<HttpExchange>,
    answer: oneshot::Sender<Answered<R>>,
}

/// A member's answer with the requests made for it.
type Answered<R> = (
    Result<Created<<R as BatchRecord>::Created>, PsaError>,
    Vec<HttpExchange>,
);

impl<R: BatchRecord> Member<R> {
    fn answer(self, result: Result<Created<R::Created>, PsaError>) {
        let _ = self.answer.send((result, self.exchanges));
    }
}

/// Runs `future` with the exchanges it makes collected apart (not in the caller's attempt).
async fn traced<T>(future: impl std::future::Future<Output = T>) -> (T, Vec<HttpExchange>) {
    let collector = Collector::new();
    let out = mailroom_trace::with_sink(collector.clone(), future).await;
    (out, collector.drain())
}

struct Open<R: BatchRecord> {
    /// Which batch this is (its leader takes only its own).
    id: u64,
    members: Vec<Member<R>>,
    bytes: usize,
}

struct Batches<R: BatchRecord> {
    next_id: u64,
    /// The batch others may still join.
    open: Option<Open<R>>,
    /// Batches that filled up before their leader woke to send them.
    sealed: HashMap<u64, Open<R>>,
}

/// Batches of one kind of record (one per kind and pipeline).
pub(super) struct Batcher<R: BatchRecord> {
    /// Changed while the engine runs ([`Batcher::set_config`]); each batch reads it as it forms.
    config: Mutex<BatchConfig>,
    batches: Mutex<Batches<R>>,
    /// Attempts in flight that may still write (shared by every kind: see [`WriteSlots`]).
    may_join: Arc<AtomicUsize>,
    /// Conversations claimed and not started yet (see [`Backlog`]).
    backlog: Arc<Backlog>,
    /// Batches sent, by size (`sizes[n]` = batches of n records), for the benchmark.
    sizes: Mutex<HashMap<usize, u64>>,
}

/// The attempts in flight that may still write to the PSA, which a batch's leader waits for.
#[derive(Default)]
pub(super) struct WriteSlots {
    may_join: Arc<AtomicUsize>,
}

impl WriteSlots {
    /// A place for an attempt that starts now.
    pub(super) fn slot(&self) -> WriteSlot {
        self.may_join.fetch_add(1, Ordering::AcqRel);
        WriteSlot {
            may_join: self.may_join.clone(),
            held: AtomicBool::new(true),
        }
    }

    /// A batcher of `R` whose leaders wait for these slots, and for `backlog`.
    pub(super) fn batcher<R: BatchRecord>(
        &self,
        config: BatchConfig,
        backlog: Arc<Backlog>,
    ) -> Batcher<R> {
        Batcher {
            config: Mutex::new(config),
            batches: Mutex::new(Batches {
                next_id: 0,
                open: None,
                sealed: HashMap::new(),
            }),
            may_join: self.may_join.clone(),
            backlog,
            sizes: Mutex::new(HashMap::new()),
        }
    }
}

/// Conversations claimed for processing whose attempts have not started yet, and the
/// concurrency of the passes that claimed them. While there is such a backlog, a batch's leader
/// also waits for attempts yet to start (a pass starts a conversation as soon as one of its
/// attempts in flight ends) — unless the batch already holds as many members as the passes
/// run at once, when nobody could start. Without it, a pass whose attempts need no request of
/// their own before their write (the delta round read the message) sends batches of whoever
/// happens to be at the write at the same moment: two or three records, and the PSA's rate
/// limit binds. A lone email (its pass has nothing waiting) is still sent at once.
#[derive(Debug, Default)]
pub struct Backlog {
    waiting: AtomicUsize,
    capacity: AtomicUsize,
}

impl Backlog {
    /// A processing pass of `conversations` claimed conversations, `concurrency` at a time.
    pub(crate) fn pass(self: &Arc<Self>, conversations: usize, concurrency: usize) -> BacklogPass {
        self.waiting.fetch_add(conversations, Ordering::AcqRel);
        self.capacity.fetch_add(concurrency, Ordering::AcqRel);
        BacklogPass {
            backlog: self.clone(),
            left: AtomicUsize::new(conversations),
            concurrency,
        }
    }

    /// Whether a batch of `members` may still grow from conversations not started yet.
    fn may_grow(&self, members: usize) -> bool {
        self.waiting.load(Ordering::Acquire) > 0 && members < self.capacity.load(Ordering::Acquire)
    }
}

/// One pass's share of the [`Backlog`]; what it did not start is given up when it ends.
#[derive(Debug)]
pub struct BacklogPass {
    backlog: Arc<Backlog>,
    left: AtomicUsize,
    concurrency: usize,
}

impl BacklogPass {
    /// One of the pass's conversations starts.
    pub(crate) fn started(&self) {
        let took = self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if took.is_ok() {
            self.backlog.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for BacklogPass {
    fn drop(&mut self) {
        let left = self.left.swap(0, Ordering::AcqRel);
        self.backlog.waiting.fetch_sub(left, Ordering::AcqRel);
        self.backlog
            .capacity
            .fetch_sub(self.concurrency, Ordering::AcqRel);
    }
}

/// An attempt's place among those that may still join a batch; given up when the attempt
/// asks for its write, or when it ends without one (drop).
pub(super) struct WriteSlot {
    may_join: Arc<AtomicUsize>,
    held: AtomicBool,
}

impl WriteSlot {
    /// Gives the place up (once).
    pub(super) fn release(&self) {
        if self.held.swap(false, Ordering::AcqRel) {
            self.may_join.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for WriteSlot {
    fn drop(&mut self) {
        self.release();
    }
}

impl<R: BatchRecord> Batcher<R> {
    /// How batches form from now on (a batch already open keeps filling to the new bounds).
    pub(super) fn set_config(&self, config: BatchConfig) {
        *self.config.lock().expect("batch config lock") = config;
    }

    fn config(&self) -> BatchConfig {
        *self.config.lock().expect("batch config lock")
    }

    /// Batches sent so far, by size (size → count).
    pub(super) fn sizes(&self) -> HashMap<usize, u64> {
        self.sizes.lock().expect("batch sizes lock").clone()
    }

    /// Creates `record` (whose `email_message_id` is `key`), in a batch with the records of
    /// other attempts in flight when there are any. `slot` is the asking attempt's place.
    pub(super) async fn create(
        &self,
        psa: &PsaClient,
        record: R,
        key: String,
        slot: Option<&WriteSlot>,
    ) -> Result<Created<R::Created>, PsaError> {
        let bytes = serde_json::to_vec(&record).map(|b| b.len()).unwrap_or(0);
        let (tx, rx) = oneshot::channel();
        let config = self.config();
        let member = Member {
            record,
            key,
            exchanges: Vec::new(),
            answer: tx,
        };
        let leads = {
            let mut b = self.batches.lock().expect("batch lock");
            let fits = b.open.as_ref().is_some_and(|o| {
                o.members.len() < config.max_records && o.bytes + bytes <= config.max_bytes
            });
            if fits {
                let open = b.open.as_mut().expect("an open batch");
                open.bytes += bytes;
                open.members.push(member);
                None
            } else {
                // The open batch is full: its leader sends it when it wakes.
                if let Some(full) = b.open.take() {
                    b.sealed.insert(full.id, full);
                }
                let id = b.next_id;
                b.next_id += 1;
                b.open = Some(Open {
                    id,
                    members: vec![member],
                    bytes,
                });
                Some(id)
            }
        };
        if let Some(slot) = slot {
            slot.release();
        }
        if let Some(id) = leads {
            if let Some(batch) = self.wait_to_send(id).await {
                self.count(batch.members.len());
                send(psa, batch.members).await;
            }
        }
        match rx.await {
            Ok((result, exchanges)) => {
                for exchange in exchanges {
                    mailroom_trace::record_shared(exchange);
                }
                result
            }
            // Its leader stopped (Mailroom stopping): a passing failure, retried; the stored
            // intent makes the retry look the ticket up first.
            Err(_) => Err(PsaError::new(
                PsaKind::Transport,
                None,
                "The batch this write was in was not sent to the end; the next attempt looks the record up.",
            )),
        }
    }

    /// The leader of batch `id` waits — at most `max_wait` — while the batch has room and
    /// other attempts may still join (in flight, or about to start: see [`Backlog`]), then
    /// takes it.
    async fn wait_to_send(&self, id: u64) -> Option<Open<R>> {
        let config = self.config();
        let deadline = tokio::time::Instant::now() + config.max_wait;
        loop {
            {
                let mut b = self.batches.lock().expect("batch lock");
                if let Some(sealed) = b.sealed.remove(&id) {
                    return Some(sealed);
                }
                // Not open any more: someone else sent it.
                let open = b.open.as_ref().filter(|o| o.id == id)?;
                let others_coming = self.may_join.load(Ordering::Acquire) > 0
                    || self.backlog.may_grow(open.members.len());
                if open.members.len() >= config.max_records
                    || !others_coming
                    || tokio::time::Instant::now() >= deadline
                {
                    return b.open.take();
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn count(&self, size: usize) {
        *self
            .sizes
            .lock()
            .expect("batch sizes lock")
            .entry(size)
            .or_default() += 1;
    }
}

/// Sends `members` in one POST and answers each. A batch refused as invalid (400) may have
/// been saved up to the refused record (a PSA without one transaction per request) or not at
/// all ([U]): its members are looked up in order until one is missing. Those found are
/// answered; when some were found the first missing one is the refused record and goes alone;
/// when none was, the batch is split in halves and sent again until the refused record is
/// alone — never a member sent twice.
async fn send<R: BatchRecord>(psa: &PsaClient, members: Vec<Member<R>>) {
    let mut queue = vec![members];
    while let Some(mut members) = queue.pop() {
        let records: Vec<R> = members.iter().map(|m| m.record.clone()).collect();
        let (result, exchanges) = traced(R::post(psa, &records)).await;
        for m in &mut members {
            m.exchanges.extend(exchanges.iter().cloned());
        }
        match result {
            Ok(answered) => answer_all(psa, members, answered).await,
            Err(e) if e.kind == PsaKind::Validation && members.len() > 1 => {
                let mut members = members.into_iter();
                let mut found = Vec::new();
                let mut missing = None;
                for mut m in members.by_ref() {
                    let (looked_up, exchanges) = traced(R::lookup(psa, &m.record, &m.key)).await;
                    m.exchanges.extend(exchanges);
                    match looked_up {
                        Ok(Some(ticket)) => found.push((m, ticket)),
                        Ok(None) => {
                            missing = Some(m);
                            break;
                        }
                        Err(e) => {
                            // Unknown which landed: each member's retry looks its ticket up.
                            m.answer(Err(e.clone()));
                            for m in members.by_ref() {
                                m.answer(Err(e.clone()));
                            }
                            break;
                        }
                    }
                }
                let rest: Vec<Member<R>> = members.collect();
                let saved_some = !found.is_empty();
                let batch = found.len();
                for (m, record) in found {
                    m.answer(Ok(Created {
                        record: Box::new(record),
                        batch,
                    }));
                }
                let Some(missing) = missing else { continue };
                if saved_some {
                    // Saved up to the refused record: it goes alone, the rest as a batch.
                    if !rest.is_empty() {
                        queue.push(rest);
                    }
                    queue.push(vec![missing]);
                } else {
                    let mut first = vec![missing];
                    first.extend(rest);
                    let second = first.split_off(first.len() / 2);
                    queue.push(second);
                    queue.push(first);
                }
            }
            Err(e) => {
                for m in members {
                    m.answer(Err(e.clone()));
                }
            }
        }
    }
}

/// Answers each member from the records HaloPSA listed, matched by Message-ID; a member the
/// answer does not list (HaloPSA may answer with one record only) is looked up, exactly as
/// after a crash.
async fn answer_all<R: BatchRecord>(
    psa: &PsaClient,
    members: Vec<Member<R>>,
    answered: Vec<R::Created>,
) {
    let mut by_key: HashMap<String, R::Created> = HashMap::new();
    for record in answered {
        if let Some(key) = R::created_key(&record).as_deref().map(normalize_message_id) {
            by_key.entry(key).or_insert(record);
        }
    }
    let batch = members.len();
    for mut m in members {
        let record = match by_key.remove(&normalize_message_id(&m.key)) {
            Some(record) => Ok(record),
            None => {
                let (found, exchanges) = traced(R::lookup(psa, &m.record, &m.key)).await;
                m.exchanges.extend(exchanges);
                found.and_then(|found| {
                    // Retried: the retry's lookup finds it if HaloPSA lists it late.
                    found.ok_or_else(|| {
                        PsaError::new(
                            PsaKind::Server,
                            None,
                            format!(
                                "HaloPSA accepted the batch but lists no record with {} {} yet; trying again",
                                R::KEY_NAME,
                                m.key
                            ),
                        )
                    })
                })
            }
        };
        m.answer(record.map(|record| Created {
            record: Box::new(record),
            batch,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backlog_lets_batches_grow_until_its_passes_have_started_everything() {
        let backlog = Arc::new(Backlog::default());
        assert!(
            !backlog.may_grow(1),
            "nothing claimed: a lone email goes at once"
        );
        let pass = backlog.pass(3, 2);
        assert!(backlog.may_grow(1));
        assert!(
            !backlog.may_grow(2),
            "as many members as the pass runs at once: nobody could start"
        );
        pass.started();
        pass.started();
        assert!(backlog.may_grow(1));
        pass.started();
        pass.started(); // more starts than claimed are not counted twice
        assert!(!backlog.may_grow(1), "everything started");
        let other = backlog.pass(5, 4);
        other.started();
        drop(other);
        drop(pass);
        assert_eq!(backlog.waiting.load(Ordering::Acquire), 0);
        assert_eq!(backlog.capacity.load(Ordering::Acquire), 0);
    }
}
