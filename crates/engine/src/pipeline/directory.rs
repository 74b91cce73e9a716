//! The PSA directory the planner matches senders against (sites, users by address and id),
//! cached for a few minutes, and the sender's user resolved (or created) from it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mailroom_mailproc::{Directory, DirectorySite, DirectoryUser, SenderMatch};
use mailroom_psa::{ErrorKind as PsaKind, NewUser};

use super::attempt::{StepError, StepLog};
use super::batch::Created;
use super::Pipeline;

/// How long a lookup that found no user for an address is trusted before creating one.
const NEGATIVE_LOOKUP_TRUSTED: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Default)]
pub(super) struct DirectoryCache {
    sites: Option<(DateTime<Utc>, Vec<DirectorySite>)>,
    /// Lower-cased address → (when looked up, the user if any).
    users: HashMap<String, (DateTime<Utc>, Option<DirectoryUser>)>,
    /// Users fetched by id (the configured default user).
    by_id: HashMap<i64, (DateTime<Utc>, DirectoryUser)>,
}

pub(super) fn directory_user(u: &mailroom_psa::User) -> DirectoryUser {
    DirectoryUser {
        id: u.id,
        name: u.name.clone().unwrap_or_default(),
        email: u.emailaddress.clone().unwrap_or_default(),
        other_emails: [&u.email2, &u.email3]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        site_id: u.site_id.unwrap_or_default(),
        client_id: u.client_id.unwrap_or_default(),
        inactive: u.inactive.unwrap_or(false),
    }
}

impl Pipeline {
    pub(super) async fn directory_for(
        &self,
        address: &str,
        default_user_id: Option<i64>,
        log: &StepLog,
    ) -> Result<Directory, StepError> {
        let now = self.clock.now();
        let ttl = chrono::Duration::from_std(self.config.directory_ttl)
            .unwrap_or_else(|_| chrono::Duration::minutes(10));
        let key = address.trim().to_lowercase();
        let mut cache = self.directory.lock().await;
        let sites_fresh = cache.sites.as_ref().is_some_and(|(at, _)| now - *at < ttl);
        if !sites_fresh {
            let sites = self.psa.list_sites(None).await?;
            log.info(format!("Loaded {} PSA site(s) into the cache", sites.len()));
            cache.sites = Some((
                now,
                sites
                    .into_iter()
                    .map(|s| DirectorySite {
                        id: s.id,
                        name: s.name.unwrap_or_default(),
                        client_id: s.client_id.unwrap_or_default(),
                        emaildomain: s.emaildomain.unwrap_or_default(),
                        inactive: s.inactive.unwrap_or(false),
                    })
                    .collect(),
            ));
        }
        let user_fresh = cache.users.get(&key).is_some_and(|(at, _)| now - *at < ttl);
        if !user_fresh {
            let found = self.psa.find_users_by_email(&key, None).await?;
            let user = found
                .iter()
                .find(|u| !u.inactive.unwrap_or(false))
                .or(found.first())
                .map(directory_user);
            log.info(match &user {
                Some(u) => format!("Sender {key} is PSA user {} ({})", u.id, u.name),
                None => format!("Sender {key} is not a PSA user yet"),
            });
            cache.users.insert(key.clone(), (now, user));
        }
        if let Some(id) = default_user_id {
            let fresh = cache.by_id.get(&id).is_some_and(|(at, _)| now - *at < ttl);
            if !fresh {
                match self.psa.get_user(id).await {
                    Ok(u) => {
                        cache.by_id.insert(id, (now, directory_user(&u)));
                    }
                    Err(e) if e.kind == PsaKind::NotFound => {
                        log.warn(format!(
                            "The configured default user {id} does not exist in the PSA"
                        ));
                        cache.by_id.remove(&id);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut users: Vec<DirectoryUser> = cache
            .users
            .get(&key)
            .and_then(|(_, u)| u.clone())
            .into_iter()
            .collect();
        if let Some((_, u)) = default_user_id.and_then(|id| cache.by_id.get(&id)) {
            if !users.iter().any(|x| x.id == u.id) {
                users.push(u.clone());
            }
        }
        Ok(Directory {
            users,
            sites: cache
                .sites
                .as_ref()
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
        })
    }

    /// Resolves the sender to `(user_id, site_id, client_id)`, creating the user when the plan
    /// says so.
    pub(super) async fn resolve_user(
        &self,
        sender: &SenderMatch,
        log: &StepLog,
    ) -> Result<(Option<i64>, Option<i64>, Option<i64>), StepError> {
        Ok(match sender {
            SenderMatch::ExistingUser {
                user_id,
                site_id,
                client_id,
            }
            | SenderMatch::DefaultUser {
                user_id,
                site_id,
                client_id,
            } => (Some(*user_id), Some(*site_id), Some(*client_id)),
            SenderMatch::NewUserOnSite {
                site_id,
                name,
                email,
                ..
            }
            | SenderMatch::NewUserOnDefaultSite {
                site_id,
                name,
                email,
                ..
            } => {
                let user = self.create_user_once(*site_id, name, email, log).await?;
                let dir_user = DirectoryUser {
                    id: user.id,
                    name: user.name.clone().unwrap_or_default(),
                    email: email.clone(),
                    other_emails: Vec::new(),
                    site_id: user.site_id.unwrap_or(*site_id),
                    client_id: user.client_id.unwrap_or_default(),
                    inactive: false,
                };
                self.directory
                    .lock()
                    .await
                    .users
                    .insert(email.to_lowercase(), (self.clock.now(), Some(dir_user)));
                (
                    Some(user.id),
                    Some(user.site_id.unwrap_or(*site_id)),
                    user.client_id,
                )
            }
            SenderMatch::Reject { reason } => {
                log.info(format!("Sender not matched to a user: {reason}"));
                (None, None, None)
            }
        })
    }

    /// The PSA user for a new sender, created once: one creation per address at a time (a
    /// second email from the same sender waits and finds the first one's user), in a batch with
    /// the users of other attempts in flight. A "not a user" lookup older than
    /// [`NEGATIVE_LOOKUP_TRUSTED`] is repeated first: another Mailroom may have created it.
    async fn create_user_once(
        &self,
        site_id: i64,
        name: &mailroom_mailproc::PersonName,
        email: &str,
        log: &StepLog,
    ) -> Result<mailroom_psa::User, StepError> {
        let key = email.trim().to_lowercase();
        let lock = self
            .user_locks
            .lock()
            .expect("user locks")
            .entry(key.clone())
            .or_default()
            .clone();
        let creating = match lock.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => {
                // Another attempt is creating this user: this one will not create it, and
                // waits for it without holding up a user batch.
                log.release_user_slot();
                lock.clone().lock_owned().await
            }
        };
        let user = self
            .find_or_create_user(&key, site_id, name, email, log)
            .await;
        drop(creating);
        // Nobody else waits for this address: its lock goes (a later attempt that made a new
        // one finds the user in the cache, which is what keeps it from creating a second).
        let mut locks = self.user_locks.lock().expect("user locks");
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&key);
        }
        user
    }

    /// [`Pipeline::create_user_once`] holding the address's lock.
    async fn find_or_create_user(
        &self,
        key: &str,
        site_id: i64,
        name: &mailroom_mailproc::PersonName,
        email: &str,
        log: &StepLog,
    ) -> Result<mailroom_psa::User, StepError> {
        let cached = self.directory.lock().await.users.get(key).cloned();
        let trusted = chrono::Duration::from_std(NEGATIVE_LOOKUP_TRUSTED)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let existing = match cached {
            Some((_, Some(u))) => Some((u.id, u.site_id, u.client_id, u.name)),
            Some((at, None)) if self.clock.now() - at < trusted => None,
            _ => self
                .psa
                .find_users_by_email(key, None)
                .await?
                .into_iter()
                .next()
                .map(|u| {
                    (
                        u.id,
                        u.site_id.unwrap_or(site_id),
                        u.client_id.unwrap_or_default(),
                        u.name.unwrap_or_default(),
                    )
                }),
        };
        if let Some((id, site_id, client_id, name)) = existing {
            log.release_user_slot();
            log.info(format!("User {email} already exists in the PSA ({id})"));
            return Ok(mailroom_psa::User {
                id,
                name: Some(name),
                emailaddress: Some(email.to_string()),
                site_id: Some(site_id),
                client_id: Some(client_id),
                ..Default::default()
            });
        }
        let Created {
            record: user,
            batch,
        } = self
            .users
            .create(
                &self.psa,
                NewUser {
                    name: name.display.clone(),
                    site_id,
                    emailaddress: email.to_string(),
                    firstname: Some(name.first.clone()).filter(|s| !s.is_empty()),
                    surname: Some(name.last.clone()).filter(|s| !s.is_empty()),
                    extra: Default::default(),
                },
                key.to_string(),
                log.user_slot(),
            )
            .await?;
        log.info(format!(
            "Created PSA user {} \"{}\" <{email}> on site {site_id}{}",
            user.id,
            name.display,
            super::batch::shared_with(batch, "new user(s)")
        ));
        Ok(*user)
    }
}
