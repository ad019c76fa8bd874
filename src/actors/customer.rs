//! Customer accounts: one actor per account (state = the stored [`Customer`] or nothing),
//! and the accounts registry, a single actor (id `"accounts"`) that serialises
//! registrations so that one email can be claimed by one account only.
//!
//! The registry writes a new account's record together with its email claim (one atomic
//! batch): the id is fresh and random, so no customer actor can hold it yet. From then on
//! only the account's actor writes its record, its sessions and its cart claims.

use std::sync::Arc;

use crate::domain::Millis;
use crate::domain::customer::{
    Customer, CustomerError, CustomerRef, ProfileChange, Session, TokenPurpose,
};
use crate::domain::event::{CustomerChange, DomainEvent};
use crate::domain::order::Address;
use crate::storage::{StorageError, Store, WriteBatch};

use super::entity::{Answer, Directory, Effect, Entity};

/// The id of the one accounts registry.
const ACCOUNTS: &str = "accounts";

/// Why a registration was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum RegistryFailure {
    /// Another account holds the email.
    #[error("the email is taken")]
    EmailTaken,
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// A registration as the registry takes it (the password already hashed).
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
}

/// The typed face of the accounts registry.
#[derive(Clone)]
pub(crate) struct RegistryHandle(pub(crate) Arc<Directory<RegistryEntity>>);

/// Commands the registry takes.
#[derive(Debug, Clone)]
pub(crate) enum RegistryCmd {
    Register(Registration),
    /// Frees an erased account's email (if the claim still names it).
    Release {
        email: String,
        customer_id: String,
    },
}

impl RegistryHandle {
    /// Creates the account, claiming its email.
    pub async fn register(&self, r: Registration) -> Answer<Customer, RegistryFailure> {
        Ok(self
            .0
            .call(ACCOUNTS, || RegistryCmd::Register(r.clone()))
            .await?
            .and_then(|c| c.ok_or(RegistryFailure::EmailTaken)))
    }

    /// Frees the email of the erased account `customer_id`.
    pub async fn release(&self, email: &str, customer_id: &str) -> Answer<(), RegistryFailure> {
        let cmd = || RegistryCmd::Release {
            email: email.to_owned(),
            customer_id: customer_id.to_owned(),
        };
        Ok(self.0.call(ACCOUNTS, cmd).await?.map(|_| ()))
    }
}

pub(crate) struct RegistryEntity {
    pub store: Store,
}

impl Entity for RegistryEntity {
    const KIND: &'static str = "accounts";
    type State = ();
    type Cmd = RegistryCmd;
    type Reply = Result<Option<Customer>, RegistryFailure>;

    fn load(&self, _: &str) -> Result<(), StorageError> {
        Ok(())
    }

    async fn handle(&self, _: &str, _: &mut (), cmd: RegistryCmd) -> Effect<Self::Reply> {
        let tables = self.store.tables();
        let r = match cmd {
            RegistryCmd::Register(r) => r,
            RegistryCmd::Release { email, customer_id } => {
                let released = (|| match tables.customer_emails.get(email.as_str())? {
                    Some(c) if c.customer_id == customer_id => {
                        tables.customer_emails.remove(email.as_str())?;
                        Ok(true)
                    }
                    _ => Ok(false),
                })();
                return match released {
                    Ok(wrote) => Effect::new(Ok(None), wrote),
                    Err(e) => Effect::read(Err(e)),
                };
            }
        };
        let registered = (|| {
            // A claim whose account is gone (an erasure interrupted before it freed the
            // email) does not hold the email.
            if let Some(claim) = tables.customer_emails.get(r.email.as_str())?
                && tables.customers.contains(claim.customer_id.as_str())?
            {
                return Err(RegistryFailure::EmailTaken);
            }
            let now = self.store.clock().now();
            let customer = Customer::new(r.id, r.email, r.name, r.password_hash, now);
            let claim = CustomerRef {
                customer_id: customer.id.clone(),
            };
            let mut batch = WriteBatch::default();
            batch.put(&tables.customer_emails, customer.email.as_str(), &claim)?;
            batch.put(&tables.customers, customer.id.as_str(), &customer)?;
            let event = DomainEvent::CustomerRegistered {
                customer_id: customer.id.clone(),
            };
            self.store.write_with_events(batch, &[event])?;
            Ok(Some(customer))
        })();
        let wrote = registered.is_ok();
        Effect::new(registered, wrote)
    }

    fn may_passivate(&self, _: &()) -> bool {
        false
    }
}

/// Why a command to an account failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CustomerFailure {
    /// No such account.
    #[error("no such customer")]
    NotFound,
    /// A rule refused the change.
    #[error(transparent)]
    Rule(#[from] CustomerError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Commands an account takes.
#[derive(Debug, Clone)]
pub(crate) enum CustomerCmd {
    Get,
    Profile(ProfileChange),
    AddAddress(String, Address),
    ReplaceAddress(String, Address),
    RemoveAddress(String),
    /// Opens a session under its token's digest.
    OpenSession {
        digest: String,
        expires_at: Millis,
    },
    /// Slides a session's expiry (a no-op if it ended meanwhile).
    ExtendSession {
        digest: String,
        expires_at: Millis,
    },
    /// Ends a session.
    EndSession(String),
    /// Makes the cart the account's cart.
    AttachCart(String),
    /// Records a mailed token's digest and asks for its mail.
    RequestToken {
        purpose: TokenPurpose,
        nonce: String,
        digest: String,
        expires_at: Millis,
    },
    /// Replaces the password through the reset token with this digest; ends every session.
    CompleteReset {
        digest: String,
        password_hash: String,
    },
    /// Verifies the email through the token with this digest.
    Verify(String),
    /// Deletes the account, its sessions and its cart claim.
    Erase,
}

/// The typed face of the customer actors.
#[derive(Clone)]
pub(crate) struct CustomerHandle(pub(crate) Arc<Directory<CustomerEntity>>);

impl CustomerHandle {
    async fn run(&self, id: &str, cmd: CustomerCmd) -> Answer<Customer, CustomerFailure> {
        self.0.call(id, || cmd.clone()).await
    }

    /// The account.
    pub async fn get(&self, id: &str) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::Get).await
    }

    /// Changes the profile.
    pub async fn change_profile(
        &self,
        id: &str,
        change: ProfileChange,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::Profile(change)).await
    }

    /// Saves an address under `address_id`.
    pub async fn add_address(
        &self,
        id: &str,
        address_id: String,
        address: Address,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::AddAddress(address_id, address))
            .await
    }

    /// Replaces a saved address.
    pub async fn replace_address(
        &self,
        id: &str,
        address_id: &str,
        address: Address,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(
            id,
            CustomerCmd::ReplaceAddress(address_id.to_owned(), address),
        )
        .await
    }

    /// Removes a saved address.
    pub async fn remove_address(
        &self,
        id: &str,
        address_id: &str,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::RemoveAddress(address_id.to_owned()))
            .await
    }

    /// Opens a session.
    pub async fn open_session(
        &self,
        id: &str,
        digest: String,
        expires_at: Millis,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::OpenSession { digest, expires_at })
            .await
    }

    /// Slides a session's expiry.
    pub async fn extend_session(
        &self,
        id: &str,
        digest: String,
        expires_at: Millis,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::ExtendSession { digest, expires_at })
            .await
    }

    /// Ends a session.
    pub async fn end_session(&self, id: &str, digest: String) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::EndSession(digest)).await
    }

    /// Makes `cart_id` the account's cart.
    pub async fn attach_cart(&self, id: &str, cart_id: &str) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::AttachCart(cart_id.to_owned()))
            .await
    }

    /// Records a mailed token (by digest) and asks for its mail.
    pub async fn request_token(
        &self,
        id: &str,
        purpose: TokenPurpose,
        nonce: String,
        digest: String,
        expires_at: Millis,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(
            id,
            CustomerCmd::RequestToken {
                purpose,
                nonce,
                digest,
                expires_at,
            },
        )
        .await
    }

    /// Replaces the password through a reset token.
    pub async fn complete_reset(
        &self,
        id: &str,
        digest: String,
        password_hash: String,
    ) -> Answer<Customer, CustomerFailure> {
        self.run(
            id,
            CustomerCmd::CompleteReset {
                digest,
                password_hash,
            },
        )
        .await
    }

    /// Verifies the email through a token.
    pub async fn verify(&self, id: &str, digest: String) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::Verify(digest)).await
    }

    /// Deletes the account (its record, sessions and cart claim); answers what it was.
    pub async fn erase(&self, id: &str) -> Answer<Customer, CustomerFailure> {
        self.run(id, CustomerCmd::Erase).await
    }
}

pub(crate) struct CustomerEntity {
    pub store: Store,
}

impl CustomerEntity {
    /// Applies `cmd` to `c`: the new account, what else to write, and its events.
    fn apply(
        &self,
        c: &Customer,
        cmd: CustomerCmd,
        now: Millis,
    ) -> Result<(Customer, WriteBatch, Vec<DomainEvent>), CustomerFailure> {
        let tables = self.store.tables();
        let mut batch = WriteBatch::default();
        let changed = |change| DomainEvent::CustomerChanged {
            customer_id: c.id.clone(),
            change,
        };
        let (next, events) = match cmd {
            CustomerCmd::Get | CustomerCmd::Erase => {
                unreachable!("reads and erasure are handled before apply")
            }
            CustomerCmd::RequestToken {
                purpose,
                nonce,
                digest,
                expires_at,
            } => {
                let customer_id = c.id.clone();
                let event = match purpose {
                    TokenPurpose::Reset => {
                        DomainEvent::PasswordResetRequested { customer_id, nonce }
                    }
                    TokenPurpose::Verify => {
                        DomainEvent::EmailVerificationRequested { customer_id, nonce }
                    }
                };
                (
                    c.with_token_requested(purpose, digest, expires_at, now),
                    vec![event],
                )
            }
            CustomerCmd::CompleteReset {
                digest,
                password_hash,
            } => {
                let (next, ended) = c.with_password_reset(&digest, password_hash, now)?;
                for d in ended {
                    batch.remove(&tables.sessions, d.as_str());
                }
                (next, vec![changed(CustomerChange::Password)])
            }
            CustomerCmd::Verify(digest) => (
                c.with_email_verified(&digest, now)?,
                vec![changed(CustomerChange::EmailVerified)],
            ),
            CustomerCmd::Profile(change) => (
                c.with_profile(&change, now)?,
                vec![changed(CustomerChange::Profile)],
            ),
            CustomerCmd::AddAddress(id, a) => (
                c.with_address(id, &a, now)?,
                vec![changed(CustomerChange::Addresses)],
            ),
            CustomerCmd::ReplaceAddress(id, a) => (
                c.with_address_replaced(&id, &a, now)?,
                vec![changed(CustomerChange::Addresses)],
            ),
            CustomerCmd::RemoveAddress(id) => (
                c.without_address(&id, now)?,
                vec![changed(CustomerChange::Addresses)],
            ),
            CustomerCmd::OpenSession { digest, expires_at } => {
                let session = Session {
                    customer_id: c.id.clone(),
                    created_at: now,
                    expires_at,
                };
                batch.put(&tables.sessions, digest.as_str(), &session)?;
                let (next, ended) = c.with_session(digest, expires_at, now);
                for d in ended {
                    batch.remove(&tables.sessions, d.as_str());
                }
                let event = DomainEvent::CustomerSignedIn {
                    customer_id: c.id.clone(),
                };
                (next, vec![event])
            }
            CustomerCmd::ExtendSession { digest, expires_at } => {
                match tables.sessions.get(digest.as_str())? {
                    Some(mut s) if s.customer_id == c.id => {
                        s.expires_at = expires_at;
                        batch.put(&tables.sessions, digest.as_str(), &s)?;
                        (c.with_session_extended(&digest, expires_at), Vec::new())
                    }
                    _ => (c.clone(), Vec::new()),
                }
            }
            CustomerCmd::EndSession(digest) => {
                batch.remove(&tables.sessions, digest.as_str());
                let next = c.without_session(&digest).unwrap_or_else(|| c.clone());
                let event = DomainEvent::CustomerSignedOut {
                    customer_id: c.id.clone(),
                };
                (next, vec![event])
            }
            CustomerCmd::AttachCart(cart_id) => {
                let owner = CustomerRef {
                    customer_id: c.id.clone(),
                };
                batch.put(&tables.cart_owners, cart_id.as_str(), &owner)?;
                let mut next = c.clone();
                next.cart_id = Some(cart_id.clone());
                next.updated_at = now;
                let event = DomainEvent::CartAttached {
                    customer_id: c.id.clone(),
                    cart_id,
                };
                (next, vec![event])
            }
        };
        batch.put(&tables.customers, c.id.as_str(), &next)?;
        Ok((next, batch, events))
    }
}

impl Entity for CustomerEntity {
    const KIND: &'static str = "customer";
    type State = Option<Customer>;
    type Cmd = CustomerCmd;
    type Reply = Result<Customer, CustomerFailure>;

    fn load(&self, id: &str) -> Result<Option<Customer>, StorageError> {
        self.store.tables().customers.get(id)
    }

    async fn handle(
        &self,
        _: &str,
        state: &mut Option<Customer>,
        cmd: CustomerCmd,
    ) -> Effect<Self::Reply> {
        let Some(c) = state.as_ref() else {
            return Effect::read(Err(CustomerFailure::NotFound));
        };
        if matches!(cmd, CustomerCmd::Get) {
            return Effect::read(Ok(c.clone()));
        }
        if matches!(cmd, CustomerCmd::Erase) {
            let tables = self.store.tables();
            let mut batch = WriteBatch::default();
            batch.remove(&tables.customers, c.id.as_str());
            for s in &c.sessions {
                batch.remove(&tables.sessions, s.digest.as_str());
            }
            if let Some(cart) = &c.cart_id {
                batch.remove(&tables.cart_owners, cart.as_str());
            }
            let event = DomainEvent::CustomerErased {
                customer_id: c.id.clone(),
            };
            return match self.store.write_with_events(batch, &[event]) {
                Ok(_) => Effect::wrote(Ok(state.take().expect("checked above"))),
                Err(e) => Effect::read(Err(e.into())),
            };
        }
        let now = self.store.clock().now();
        let written = self.apply(c, cmd, now).and_then(|(next, batch, events)| {
            self.store.write_with_events(batch, &events)?;
            Ok(next)
        });
        match written {
            Ok(next) => {
                *state = Some(next.clone());
                Effect::wrote(Ok(next))
            }
            Err(e) => Effect::read(Err(e)),
        }
    }

    fn evict_now(&self, state: &Option<Customer>) -> bool {
        state.is_none()
    }
}
