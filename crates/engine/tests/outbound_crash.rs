//! Outgoing mail survives a crash (issue 12): a real child process sends agents' replies and is
//! killed with SIGKILL after Graph sent one but before the child noted it (the sandbox holds
//! the answer of `send` back, so the kill lands in that window); started again, it finishes
//! the batch — and every email exists exactly once in the mailbox's sent mail.
//!
//! The child is this test binary itself, re-executed with `--ignored --exact outbound_child`
//! and `MAILROOM_OUTBOUND_CHILD` naming the data directory and the keyring service. Needs a
//! Secret Service (run under `./dev test`).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use mailroom_engine::outbound::agent_replies::ActionOutcome;
use mailroom_engine::Core;
use mailroom_sandbox::{FaultRule, Service};
use mailroom_secrets::Secrets;
use mailroom_store::outbound::OutboundStatus;

const CHILD_ENV: &str = "MAILROOM_OUTBOUND_CHILD";

/// The sender in the child process: sends every due email, then exits.
#[test]
#[ignore = "runs only as the child process of killed_between_the_send_and_its_record_every_email_exists_once"]
fn outbound_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (dir, service) = spec.split_once('|').unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let core = Core::open_with_secrets(dir, Secrets::with_service(service))
            .await
            .unwrap();
        while core.send_due_outbound(chrono::Utc::now()).await.unwrap() > 0 {}
    });
}

fn spawn_child(dir: &std::path::Path, service: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "outbound_child", "--nocapture"])
        .env(CHILD_ENV, format!("{}|{service}", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the child starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_the_send_and_its_record_every_email_exists_once() {
    let h = harness(default_settings()).await;
    let service = format!("mailroom-test-{}", uuid::Uuid::new_v4());
    let core = core_with_service(&h, &service).await;

    // Three tickets from email, an agent's email action on each.
    let mut ids = Vec::new();
    for subject in ["Printer", "VPN", "Scanner"] {
        let original = h.deliver(mail("pat@fabrikam.test", "Pat Smith", subject));
        h.scan().await;
        let ticket_id = h.ticket_by_message_id(&original.internet_message_id)[0]["id"]
            .as_i64()
            .unwrap();
        agent_emails(&h, ticket_id, &format!("About the {subject}: fixed.")).await;
    }
    for (_, outcome) in core.queue_agent_replies().await.unwrap() {
        let ActionOutcome::Queued(id) = outcome else {
            panic!("{outcome:?}")
        };
        ids.push(id);
    }
    assert_eq!(ids.len(), 3);

    // Graph sends, then holds the answer back: the child is killed while it waits.
    let rule =
        h.sb.faults()
            .add(FaultRule::late_answer(Service::Graph, "*/send", 4000))
            .unwrap();
    let mut child = spawn_child(h.dir.path(), &service);
    let start = Instant::now();
    while h.sb.graph().sent_mail(SUPPORT).is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited before Graph sent anything"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing was sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_eq!(h.sb.graph().sent_mail(SUPPORT).len(), 1);
    let states: Vec<OutboundStatus> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(core.store().outbound(*id).await.unwrap().unwrap().status);
        }
        v
    };
    assert!(
        !states.contains(&OutboundStatus::Sent),
        "killed before the send was noted: {states:?}"
    );
    assert!(states.contains(&OutboundStatus::Drafted), "{states:?}");

    // Started again (Graph answering at once now): the batch is finished, nothing twice.
    h.sb.faults().remove(rule);
    let mut child = spawn_child(h.dir.path(), &service);
    assert!(child.wait().unwrap().success());
    let sent = h.sb.graph().sent_mail(SUPPORT);
    assert_eq!(sent.len(), 3, "{sent:#?}");
    let mut message_ids: Vec<&str> = sent
        .iter()
        .map(|m| m.internet_message_id.as_str())
        .collect();
    message_ids.sort_unstable();
    message_ids.dedup();
    assert_eq!(message_ids.len(), 3, "each email once");
    for id in &ids {
        let email = core.store().outbound(*id).await.unwrap().unwrap();
        assert_eq!(email.status, OutboundStatus::Sent);
        assert!(message_ids.contains(&email.internet_message_id.as_str()));
    }
    let _ = core.secrets().delete_owner(&h.mailbox.id).await;
}
