//! The client's futures can run on a multi-threaded runtime (`tokio::spawn`).

use std::sync::Arc;

use mailroom_psa::{PsaClient, PsaConfig, Secret};

fn assert_send<T: Send>(_: &T) {}

#[test]
fn request_futures_are_send() {
    let clock: mailroom_clock::SharedClock = Arc::new(mailroom_clock::SystemClock);
    let client = PsaClient::new(
        PsaConfig::new("https://psa.invalid", "id", Secret::new("s")),
        clock,
    )
    .expect("a client");
    assert_send(&client.me());
    assert_send(&client.list_sites(None));
    assert_send(&client.find_tickets_by_message_id("<a@b>"));
}
