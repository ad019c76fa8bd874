//! Customer accounts: registration, sign-in and sessions, the profile and saved addresses,
//! the order history, and who may touch a cart or an order.
//!
//! A session token resolves to an account through its digest ([`Engine::authenticate`]);
//! each use slides its expiry (written at most once per [`SLIDE_EVERY`], so that reads
//! stay reads). Access to a cart or an order held by an account is for that account only
//! ([`Engine::check_cart_access`], [`Engine::check_order_access`]): anyone else is told it
//! does not exist.

use std::net::IpAddr;
use std::sync::Arc;

use super::credentials::{self, is_token};
use super::{Engine, EngineError, check_id, millis};
use crate::actors::customer::{CustomerFailure, Registration, RegistryFailure};
use crate::domain::Millis;
use crate::domain::customer::{
    Customer, CustomerError, ProfileChange, TokenPurpose, check_name, check_password, hex,
    mailed_token, normalize_email, token_customer, token_digest,
};
use crate::domain::order::{Address, Order};

/// A session's expiry is written again only once it has slid this far: at most one write
/// per session per hour, however many requests it makes.
pub const SLIDE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Most orders on one page of a customer's history.
pub const MAX_HISTORY_PAGE: usize = 100;

/// An authenticated request: the account and the session it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The account's id.
    pub customer_id: String,
    /// The session's token digest (to end it).
    session: String,
    /// When the session lapses unless used.
    pub expires_at: Millis,
}

/// A session just opened.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The token: shown once, never stored.
    pub token: String,
    /// When it lapses unless used.
    pub expires_at: Millis,
    /// The account.
    pub customer: Customer,
}

/// `Ok` unless `owners` names an account other than `customer` for `id`; otherwise the
/// thing is "not found" (an id does not tell whose it is).
fn not_anothers(
    owners: &crate::storage::Table<str, crate::domain::customer::CustomerRef>,
    id: &str,
    customer: Option<&str>,
    what: &'static str,
) -> Result<(), EngineError> {
    match owners.get(id)? {
        Some(owner) if Some(owner.customer_id.as_str()) != customer => {
            Err(EngineError::NotFound(what))
        }
        _ => Ok(()),
    }
}

/// Everything held about a customer ([`Engine::export_customer`]).
#[derive(Debug, Clone)]
pub struct CustomerExport {
    /// The account (profile, addresses, sessions' expiries, pending tokens' times).
    pub customer: Customer,
    /// Every order in their history.
    pub orders: Vec<Order>,
    /// Their cart, if one is attached.
    pub cart: Option<super::CartView>,
    /// Mails sent to their address.
    pub notifications: Vec<crate::notify::Notification>,
}

fn invalid_token() -> EngineError {
    EngineError::Invalid(crate::domain::Invalid::new(
        "token",
        "is invalid, used or expired",
    ))
}

/// A page of a customer's orders, newest first.
#[derive(Debug, Clone)]
pub struct CustomerOrderPage {
    /// The orders.
    pub items: Vec<Order>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

impl From<CustomerFailure> for EngineError {
    fn from(e: CustomerFailure) -> Self {
        match e {
            CustomerFailure::NotFound => EngineError::NotFound("customer"),
            CustomerFailure::Rule(CustomerError::Invalid(i)) => EngineError::Invalid(i),
            CustomerFailure::Rule(CustomerError::InvalidToken) => EngineError::Invalid(
                crate::domain::Invalid::new("token", "is invalid, used or expired"),
            ),
            CustomerFailure::Rule(CustomerError::UnknownAddress(_)) => {
                EngineError::NotFound("address")
            }
            CustomerFailure::Rule(CustomerError::TooManyAddresses) => {
                EngineError::Invalid(crate::domain::Invalid::new(
                    "addresses",
                    format!(
                        "an account holds at most {} addresses",
                        crate::domain::customer::MAX_ADDRESSES
                    ),
                ))
            }
            CustomerFailure::Storage(s) => s.into(),
        }
    }
}

impl From<RegistryFailure> for EngineError {
    fn from(e: RegistryFailure) -> Self {
        match e {
            RegistryFailure::EmailTaken => EngineError::EmailTaken,
            RegistryFailure::Storage(s) => s.into(),
        }
    }
}

/// Parses a history cursor: a key's suffix after its customer or email prefix (the
/// inverted time in hex, then the order id).
fn parse_history_cursor(c: &str) -> Option<(u64, &str)> {
    if c.len() != 48
        || !c
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let (at, id) = c.split_at(16);
    Some((u64::from_str_radix(at, 16).ok()?, id))
}

impl Engine {
    /// Creates an account. The email is normalised (trimmed, lower-cased); one taken by
    /// another account is [`EngineError::EmailTaken`].
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<Customer, EngineError> {
        let email = normalize_email(email)?;
        check_password(password)?;
        let name = check_name(name)?;
        if self
            .inner
            .store
            .tables()
            .customer_emails
            .contains(email.as_str())?
        {
            return Err(EngineError::EmailTaken);
        }
        let password_hash = {
            let (inner, password) = (self.inner.clone(), password.to_owned());
            super::blocking(move || inner.credentials.hash(&password)).await?
        };
        let registration = Registration {
            id: uuid::Uuid::new_v4().simple().to_string(),
            email,
            name,
            password_hash,
        };
        Ok(self.inner.accounts.register(registration).await??)
    }

    /// Signs in: a new session for the account with this email and password. A wrong
    /// password and an unknown email are the same answer ([`EngineError::InvalidCredentials`])
    /// after the same work. Too many failures for the email or from `client` within the
    /// window are [`EngineError::TooManyLoginAttempts`].
    ///
    /// With `cart`, the guest's cart is attached to the account as [`Engine::attach_cart`]
    /// does; a cart that is unknown or another account's is refused before any session
    /// is opened.
    pub async fn sign_in(
        &self,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
        cart: Option<&str>,
    ) -> Result<SignedIn, EngineError> {
        let now = self.inner.store.clock().now();
        // A malformed email has no account: the same answer as a wrong password.
        let email = normalize_email(email).unwrap_or_else(|_| email.trim().to_lowercase());
        let creds = &self.inner.credentials;
        if let Err(wait_ms) = creds.check(&email, client, now) {
            return Err(EngineError::TooManyLoginAttempts {
                retry_after_secs: (wait_ms.max(0) as u64).div_ceil(1000).max(1),
            });
        }
        let tables = self.inner.store.tables();
        let customer = match tables.customer_emails.get(email.as_str())? {
            Some(r) => tables.customers.get(r.customer_id.as_str())?,
            None => None,
        };
        let verified = {
            let inner = self.inner.clone();
            let password = password.to_owned();
            let hash = customer.as_ref().map(|c| c.password_hash.clone());
            super::blocking(move || {
                Ok::<_, EngineError>(inner.credentials.verify(&password, hash.as_deref()))
            })
            .await?
        };
        let Some(customer) = customer.filter(|_| verified) else {
            creds.failed(&email, client, now);
            return Err(EngineError::InvalidCredentials);
        };
        creds.succeeded(&email);
        if let Some(cart) = cart {
            check_id(cart, "cart")?;
            not_anothers(&tables.cart_owners, cart, Some(&customer.id), "cart")?;
            self.cart(cart).await?;
        }
        let (token, session) = credentials::new_token()?;
        let expires_at = now + millis(self.inner.config.session_ttl);
        let mut customer = self
            .inner
            .customers
            .open_session(&customer.id, session.clone(), expires_at)
            .await??;
        if let Some(cart) = cart {
            let auth = Authenticated {
                customer_id: customer.id.clone(),
                session,
                expires_at,
            };
            customer = self.attach_cart(&auth, cart).await?;
        }
        Ok(SignedIn {
            token,
            expires_at,
            customer,
        })
    }

    /// The account a session token belongs to; [`EngineError::Unauthenticated`] for a
    /// token that is unknown, ended or lapsed. Slides the session's expiry.
    pub async fn authenticate(&self, token: &str) -> Result<Authenticated, EngineError> {
        if !is_token(token) {
            return Err(EngineError::Unauthenticated);
        }
        let session_id = token_digest(token);
        let now = self.inner.store.clock().now();
        let session = self
            .inner
            .store
            .tables()
            .sessions
            .get(session_id.as_str())?
            .filter(|s| s.expires_at > now)
            .ok_or(EngineError::Unauthenticated)?;
        let ttl = millis(self.inner.config.session_ttl);
        let mut expires_at = session.expires_at;
        if now + ttl - session.expires_at >= millis(SLIDE_EVERY) {
            expires_at = now + ttl;
            self.inner
                .customers
                .extend_session(&session.customer_id, session_id.clone(), expires_at)
                .await??;
        }
        Ok(Authenticated {
            customer_id: session.customer_id,
            session: session_id,
            expires_at,
        })
    }

    /// Ends the session of `auth`.
    pub async fn sign_out(&self, auth: &Authenticated) -> Result<(), EngineError> {
        self.inner
            .customers
            .end_session(&auth.customer_id, auth.session.clone())
            .await??;
        Ok(())
    }

    /// The signed-in customer's account.
    pub async fn customer(&self, auth: &Authenticated) -> Result<Customer, EngineError> {
        Ok(self.inner.customers.get(&auth.customer_id).await??)
    }

    /// Changes the signed-in customer's name or default addresses.
    pub async fn update_customer(
        &self,
        auth: &Authenticated,
        change: ProfileChange,
    ) -> Result<Customer, EngineError> {
        Ok(self
            .inner
            .customers
            .change_profile(&auth.customer_id, change)
            .await??)
    }

    /// Saves an address; returns the account and the new address's id.
    pub async fn add_address(
        &self,
        auth: &Authenticated,
        address: Address,
    ) -> Result<(Customer, String), EngineError> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let customer = self
            .inner
            .customers
            .add_address(&auth.customer_id, id.clone(), address)
            .await??;
        Ok((customer, id))
    }

    /// Replaces a saved address.
    pub async fn replace_address(
        &self,
        auth: &Authenticated,
        address_id: &str,
        address: Address,
    ) -> Result<Customer, EngineError> {
        Ok(self
            .inner
            .customers
            .replace_address(&auth.customer_id, address_id, address)
            .await??)
    }

    /// Removes a saved address.
    pub async fn remove_address(
        &self,
        auth: &Authenticated,
        address_id: &str,
    ) -> Result<Customer, EngineError> {
        Ok(self
            .inner
            .customers
            .remove_address(&auth.customer_id, address_id)
            .await??)
    }

    /// Makes a guest's cart the signed-in customer's cart (what signing in with a cart
    /// does). If the account had another open cart, its lines are merged in: per SKU the
    /// larger quantity wins. A cart already held by another account is not found.
    pub async fn attach_cart(
        &self,
        auth: &Authenticated,
        cart_id: &str,
    ) -> Result<Customer, EngineError> {
        use crate::domain::cart::CartStatus;
        self.check_cart_access(cart_id, Some(auth)).await?;
        let guest = self.cart(cart_id).await?.cart;
        let customer = self.customer(auth).await?;
        if let Some(old) = customer.cart_id.as_deref().filter(|c| *c != cart_id)
            && let Ok(old) = self.cart(old).await
            && old.cart.status == CartStatus::Open
            && old.cart.checkout.is_none()
        {
            for line in &old.cart.lines {
                if line.quantity > guest.quantity_of(&line.sku) {
                    // A product deleted since cannot be added: its line is dropped.
                    match self
                        .cart_set_quantity(cart_id, line.sku.as_str(), i64::from(line.quantity))
                        .await
                    {
                        Ok(_) | Err(EngineError::UnknownSku(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(self
            .inner
            .customers
            .attach_cart(&auth.customer_id, cart_id)
            .await??)
    }

    /// The account with this sign-in email, if any (the admin's lookup).
    pub async fn customer_by_email(&self, email: &str) -> Result<Option<Customer>, EngineError> {
        if email.chars().count() > 254 {
            return Err(EngineError::BadQuery(
                "email: at most 254 characters".into(),
            ));
        }
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        match self
            .inner
            .store
            .tables()
            .customer_emails
            .get(email.as_str())?
        {
            Some(r) => Ok(Some(self.customer_by_id(&r.customer_id).await?)),
            None => Ok(None),
        }
    }

    /// The account with this id (the admin's lookup).
    pub async fn customer_by_id(&self, id: &str) -> Result<Customer, EngineError> {
        check_id(id, "customer")?;
        Ok(self.inner.customers.get(id).await??)
    }

    /// A page of a customer's orders, newest first (`customer_id` is the signed-in
    /// customer's, [`Authenticated::customer_id`], or one the admin looked up).
    pub async fn customer_orders(
        &self,
        customer_id: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<CustomerOrderPage, EngineError> {
        let bad = |m: &str| EngineError::BadQuery(m.to_owned());
        if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
            return Err(bad("limit: must be between 1 and 100"));
        }
        check_id(customer_id, "customer")?;
        let after = match cursor {
            None => None,
            Some(c) => {
                let (inverted, order) =
                    parse_history_cursor(c).ok_or_else(|| bad("cursor: malformed"))?;
                let mut suffix = inverted.to_be_bytes().to_vec();
                suffix.extend_from_slice(order.as_bytes());
                Some(suffix)
            }
        };
        let (orders, next_cursor) = self.history(customer_id, after.as_deref(), limit)?;
        // Show only what is durable.
        let barrier = self.inner.store.barrier();
        barrier.wait(barrier.current()).await?;
        let items = orders.iter().map(|o| Order::clone(o)).collect();
        Ok(CustomerOrderPage { items, next_cursor })
    }

    /// A page of a customer's history after `after` (newest first, at most `limit`),
    /// decoded once per stored version, and the cursor of the next page. It may hold an
    /// order not yet durable: a caller that shows it waits for the barrier first.
    pub(crate) fn history(
        &self,
        customer_id: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<Arc<Order>>, Option<String>), EngineError> {
        let tables = self.inner.store.tables();
        let keys = self.history_keys(customer_id, after, limit + 1)?;
        let more = keys.len() > limit;
        let page: Vec<(Vec<u8>, String)> = keys.into_iter().take(limit).collect();
        let mut items = Vec::with_capacity(limit);
        for (_, order_id) in &page {
            // A failed checkout never became an order (as in the admin's listing).
            if let Some(o) = tables.order(order_id)?
                && o.status != crate::domain::order::OrderStatus::Failed
            {
                items.push(o);
            }
        }
        let next_cursor = more
            .then(|| {
                page.last()
                    .map(|(suffix, id)| format!("{}{id}", hex(&suffix[..8])))
            })
            .flatten();
        Ok((items, next_cursor))
    }

    /// The keys (time-and-id suffixes, newest first) of a customer's history after
    /// `after`, at most `limit`: their own orders and, once their email is verified, the
    /// guest orders placed with it (never another account's).
    fn history_keys(
        &self,
        customer_id: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, String>, EngineError> {
        let tables = self.inner.store.tables();
        let mut keys = std::collections::BTreeMap::new();
        let mut scan = |table: &crate::storage::Table<[u8], crate::storage::Mark>,
                        prefix: &[u8],
                        others_excluded: bool|
         -> Result<(), EngineError> {
            let from: Option<Vec<u8>> = after.map(|a| [prefix, a].concat());
            for (key, _) in table.scan_prefix(prefix, from.as_deref(), limit)? {
                let suffix = key[prefix.len()..].to_vec();
                if suffix.len() <= 8 {
                    continue;
                }
                let order_id = String::from_utf8_lossy(&suffix[8..]).into_owned();
                if others_excluded
                    && tables
                        .order_owners
                        .get(order_id.as_str())?
                        .is_some_and(|o| o.customer_id != customer_id)
                {
                    continue;
                }
                keys.insert(suffix, order_id);
            }
            Ok(())
        };
        scan(&tables.customer_orders, customer_id.as_bytes(), false)?;
        if let Some(c) = tables.customers.get(customer_id)?
            && c.email_verified
        {
            let prefix = crate::storage::email_orders_prefix(&c.email);
            scan(&tables.email_orders, &prefix, true)?;
        }
        while keys.len() > limit {
            keys.pop_last();
        }
        Ok(keys)
    }

    /// Every order in a customer's history (for export and erasure).
    fn all_history(&self, customer_id: &str) -> Result<Vec<String>, EngineError> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.history_keys(customer_id, after.as_deref(), 500)?;
            let Some(last) = page.keys().next_back().cloned() else {
                return Ok(out);
            };
            out.extend(page.into_values());
            after = Some(last);
        }
    }

    /// Mails the customer a fresh token for `purpose` (replacing the last), unless one
    /// was asked for less than a minute ago.
    async fn mail_token(
        &self,
        c: &Customer,
        purpose: TokenPurpose,
    ) -> Result<Customer, EngineError> {
        let now = self.now();
        if c.pending(purpose)
            .is_some_and(|p| now - p.requested_at < 60_000)
        {
            return Ok(c.clone());
        }
        let ttl = match purpose {
            TokenPurpose::Reset => self.inner.config.password_reset_ttl,
            TokenPurpose::Verify => self.inner.config.email_verification_ttl,
        };
        let nonce = credentials::nonce()?;
        let token = mailed_token(&self.inner.token_secret, purpose, &c.id, &nonce);
        Ok(self
            .inner
            .customers
            .request_token(
                &c.id,
                purpose,
                nonce,
                token_digest(&token),
                now + millis(ttl),
            )
            .await??)
    }

    /// Asks for a password-reset mail. Always succeeds, whether or not the email has an
    /// account (the answer must not tell). A new token replaces the last one; at most one
    /// mail per account per minute.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), EngineError> {
        if email.chars().count() > 254 {
            return Err(crate::domain::Invalid::new("email", "at most 254 characters").into());
        }
        let Ok(email) = normalize_email(email) else {
            return Ok(());
        };
        let tables = self.inner.store.tables();
        let Some(claim) = tables.customer_emails.get(email.as_str())? else {
            return Ok(());
        };
        if let Some(c) = tables.customers.get(claim.customer_id.as_str())? {
            self.mail_token(&c, TokenPurpose::Reset).await?;
        }
        Ok(())
    }

    /// Sets a new password with a mailed reset token; the token is used up and every
    /// session of the account ends.
    pub async fn reset_password(&self, token: &str, password: &str) -> Result<(), EngineError> {
        let id = token_customer(token).ok_or_else(invalid_token)?;
        check_password(password)?;
        let now = self.now();
        let d = token_digest(token);
        // Cheap checks before the expensive hash; the actor checks again, atomically.
        let pending = self
            .inner
            .store
            .tables()
            .customers
            .get(id)?
            .and_then(|c| c.pending_reset);
        if !pending.is_some_and(|p| p.digest == d && p.expires_at > now) {
            return Err(invalid_token());
        }
        let password_hash = {
            let (inner, password) = (self.inner.clone(), password.to_owned());
            super::blocking(move || inner.credentials.hash(&password)).await?
        };
        self.inner
            .customers
            .complete_reset(id, d, password_hash)
            .await??;
        Ok(())
    }

    /// Mails the signed-in customer a token that proves their email (nothing if it is
    /// verified already; at most one mail a minute).
    pub async fn request_email_verification(
        &self,
        auth: &Authenticated,
    ) -> Result<Customer, EngineError> {
        let c = self.customer(auth).await?;
        if c.email_verified {
            return Ok(c);
        }
        self.mail_token(&c, TokenPurpose::Verify).await
    }

    /// Verifies the signed-in customer's email with the mailed token: from now on their
    /// history includes the guest orders placed with it.
    pub async fn verify_email(
        &self,
        auth: &Authenticated,
        token: &str,
    ) -> Result<Customer, EngineError> {
        if token_customer(token) != Some(auth.customer_id.as_str()) {
            return Err(invalid_token());
        }
        Ok(self
            .inner
            .customers
            .verify(&auth.customer_id, token_digest(token))
            .await??)
    }

    /// Everything held about the signed-in customer.
    pub async fn export_customer(
        &self,
        auth: &Authenticated,
    ) -> Result<CustomerExport, EngineError> {
        let customer = self.customer(auth).await?;
        let tables = self.inner.store.tables();
        let mut orders = Vec::new();
        for id in self.all_history(&customer.id)? {
            if let Some(o) = tables.orders.get(id.as_str())? {
                orders.push(o);
            }
        }
        let cart = match &customer.cart_id {
            Some(id) => self.cart(id).await.ok(),
            None => None,
        };
        let mut notifications = Vec::new();
        let mut from = 0;
        loop {
            let (page, next) = crate::notify::list(&self.inner.store, from, 1000)?;
            notifications.extend(page.into_iter().filter(|n| n.to == customer.email));
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        Ok(CustomerExport {
            customer,
            orders,
            cart,
            notifications,
        })
    }

    /// Erases the signed-in customer: every order in their history keeps its lines and
    /// totals but loses its email and address; the account, its sessions and its cart
    /// claim are deleted; the email is free again.
    pub async fn erase_customer(&self, auth: &Authenticated) -> Result<(), EngineError> {
        let c = self.customer(auth).await?;
        for id in self.all_history(&c.id)? {
            match self.inner.orders.anonymise(&id).await? {
                Ok(_) | Err(crate::actors::order::OrderFailure::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.inner.customers.erase(&c.id).await??;
        self.inner.accounts.release(&c.email, &c.id).await??;
        Ok(())
    }

    /// `Ok` if the cart is a guest's (anyone holding its id may use it) or the signed-in
    /// customer's; [`EngineError::NotFound`] if another account holds it.
    pub async fn check_cart_access(
        &self,
        cart_id: &str,
        auth: Option<&Authenticated>,
    ) -> Result<(), EngineError> {
        check_id(cart_id, "cart")?;
        let owners = &self.inner.store.tables().cart_owners;
        not_anothers(
            owners,
            cart_id,
            auth.map(|a| a.customer_id.as_str()),
            "cart",
        )
    }

    /// `Ok` if the order is a guest's or the signed-in customer's;
    /// [`EngineError::NotFound`] if it belongs to another account.
    pub async fn check_order_access(
        &self,
        order_id: &str,
        auth: Option<&Authenticated>,
    ) -> Result<(), EngineError> {
        let owners = &self.inner.store.tables().order_owners;
        not_anothers(
            owners,
            order_id,
            auth.map(|a| a.customer_id.as_str()),
            "order",
        )
    }
}
