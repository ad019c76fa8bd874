//! Email templates: built-in defaults, stored overrides, rendering with minijinja.
//!
//! A template has three parts: `subject` and `text` (plain text, no escaping) and `html`
//! (HTML-escaped: every value a shopper typed — a name, an address — is escaped). A
//! template is checked when it is stored, by compiling every part and rendering it with a
//! sample context, so a broken template is refused at `PUT`, never found at send time.

use serde_json::{Value, json};

pub use crate::domain::notification::Template;

/// Names of the templates, in the order they are listed.
pub const NAMES: [&str; 8] = [
    "order_confirmation",
    "order_shipped",
    "order_cancelled",
    "order_refunded",
    "payment_failed",
    "cart_abandoned",
    "password_reset",
    "email_verification",
];

/// Longest part of a template accepted, in characters (three parts of ASCII stay under
/// the store's record limit).
pub const MAX_PART: usize = 12_000;

const ITEMS_TEXT: &str = "{% for i in order.items %}  {{ i.quantity }} × {{ i.name }} ({{ i.sku }})  {{ i.line_total|money(order.currency) }}\n{% endfor %}";
const ITEMS_HTML: &str = "<table>{% for i in order.items %}<tr><td>{{ i.quantity }} ×</td><td>{{ i.name }}</td><td>{{ i.line_total|money(order.currency) }}</td></tr>{% endfor %}</table>";
const BILL_TEXT: &str = "Subtotal: {{ order.subtotal|money(order.currency) }}\n{% for d in order.discounts %}Discount{% if d.code %} {{ d.code }}{% endif %}: -{{ d.amount|money(order.currency) }}\n{% endfor %}{% if order.shipping_method %}Shipping ({{ order.shipping_method }}): {{ order.shipping|money(order.currency) }}\n{% endif %}{% for t in order.tax %}{% if order.tax_included %}incl. {% endif %}{{ t.name }} {{ t.rate }}: {{ t.amount|money(order.currency) }}\n{% endfor %}Total: {{ order.total|money(order.currency) }}\n";
const BILL_HTML: &str = "<table><tr><td>Subtotal</td><td>{{ order.subtotal|money(order.currency) }}</td></tr>{% for d in order.discounts %}<tr><td>Discount{% if d.code %} {{ d.code }}{% endif %}</td><td>-{{ d.amount|money(order.currency) }}</td></tr>{% endfor %}{% if order.shipping_method %}<tr><td>Shipping ({{ order.shipping_method }})</td><td>{{ order.shipping|money(order.currency) }}</td></tr>{% endif %}{% for t in order.tax %}<tr><td>{% if order.tax_included %}incl. {% endif %}{{ t.name }} {{ t.rate }}</td><td>{{ t.amount|money(order.currency) }}</td></tr>{% endfor %}<tr><td><b>Total</b></td><td><b>{{ order.total|money(order.currency) }}</b></td></tr></table>";
const ADDRESS_TEXT: &str = "{{ order.shipping_address.name }}\n{{ order.shipping_address.line1 }}\n{% if order.shipping_address.line2 %}{{ order.shipping_address.line2 }}\n{% endif %}{{ order.shipping_address.postal_code }} {{ order.shipping_address.city }}\n{{ order.shipping_address.country }}";
const ADDRESS_HTML: &str = "<p>{{ order.shipping_address.name }}<br>{{ order.shipping_address.line1 }}<br>{% if order.shipping_address.line2 %}{{ order.shipping_address.line2 }}<br>{% endif %}{{ order.shipping_address.postal_code }} {{ order.shipping_address.city }}<br>{{ order.shipping_address.country }}</p>";

/// The built-in template `name`.
pub fn default_template(name: &str) -> Option<Template> {
    let (subject, text, html) = match name {
        "order_confirmation" => (
            "Your order {{ order.number }} is confirmed".to_owned(),
            format!(
                "Thank you for your order.\n\nOrder {{{{ order.number }}}}\n\n{ITEMS_TEXT}\n{BILL_TEXT}\nShipping to:\n{ADDRESS_TEXT}\n"
            ),
            format!(
                "<h1>Thank you for your order</h1><p>Order {{{{ order.number }}}}</p>{ITEMS_HTML}{BILL_HTML}<h2>Shipping to</h2>{ADDRESS_HTML}"
            ),
        ),
        "order_shipped" => (
            "Your order {{ order.number }} is on its way".to_owned(),
            "Your order {{ order.number }} has shipped.\n{% if order.carrier %}Carrier: {{ order.carrier }}\n{% endif %}{% if order.tracking %}Tracking: {{ order.tracking }}\n{% endif %}".to_owned(),
            "<p>Your order {{ order.number }} has shipped.</p>{% if order.carrier %}<p>Carrier: {{ order.carrier }}</p>{% endif %}{% if order.tracking %}<p>Tracking: {{ order.tracking }}</p>{% endif %}".to_owned(),
        ),
        "order_cancelled" => (
            "Your order {{ order.number }} was cancelled".to_owned(),
            "Your order {{ order.number }} was cancelled. {{ order.total|money(order.currency) }} will be refunded to your payment method.\n".to_owned(),
            "<p>Your order {{ order.number }} was cancelled. {{ order.total|money(order.currency) }} will be refunded to your payment method.</p>".to_owned(),
        ),
        "order_refunded" => (
            "Your refund for order {{ order.number }}".to_owned(),
            "We refunded {{ refund_amount|money(order.currency) }} for order {{ order.number }}.\n".to_owned(),
            "<p>We refunded {{ refund_amount|money(order.currency) }} for order {{ order.number }}.</p>".to_owned(),
        ),
        "payment_failed" => (
            "Your payment did not go through".to_owned(),
            "We could not take the payment for your order ({{ reason }}). Nothing was charged; your cart is still there for another try.\n".to_owned(),
            "<p>We could not take the payment for your order ({{ reason }}). Nothing was charged; your cart is still there for another try.</p>".to_owned(),
        ),
        "cart_abandoned" => (
            "You left something in your cart".to_owned(),
            "Your cart is waiting for you:\n\n{% for i in cart.items %}  {{ i.quantity }} × {{ i.name }}\n{% endfor %}\nTotal: {{ cart.total|money(cart.currency) }}\n".to_owned(),
            "<p>Your cart is waiting for you:</p><ul>{% for i in cart.items %}<li>{{ i.quantity }} × {{ i.name }}</li>{% endfor %}</ul><p>Total: {{ cart.total|money(cart.currency) }}</p>".to_owned(),
        ),
        "password_reset" => (
            "Reset your password".to_owned(),
            "Someone (we hope you) asked to reset the password of your account.\n\nYour reset token, valid for {{ expires_in_minutes }} minutes and once only:\n\n  {{ token }}\n\nSend it with your new password to POST /api/v1/customers/password-reset/confirm. If you did not ask, ignore this mail: your password stays as it is.\n".to_owned(),
            "<p>Someone (we hope you) asked to reset the password of your account.</p><p>Your reset token, valid for {{ expires_in_minutes }} minutes and once only:</p><pre>{{ token }}</pre><p>If you did not ask, ignore this mail: your password stays as it is.</p>".to_owned(),
        ),
        "email_verification" => (
            "Confirm your email address".to_owned(),
            "Confirm that {{ customer.email }} is yours with this token, valid for {{ expires_in_minutes }} minutes:\n\n  {{ token }}\n".to_owned(),
            "<p>Confirm that {{ customer.email }} is yours with this token, valid for {{ expires_in_minutes }} minutes:</p><pre>{{ token }}</pre>".to_owned(),
        ),
        _ => return None,
    };
    Some(Template {
        subject,
        text,
        html,
        updated_at: None,
    })
}

/// `12345, "USD"` → `"123.45 USD"`.
pub(crate) fn money(minor: i64, currency: String) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", m / 100, m % 100)
}

fn environment() -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.add_filter("money", money);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Subject (one line).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// Why a template was refused or could not render.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TemplateError {
    /// A part is longer than [`MAX_PART`] characters.
    #[error("{part}: at most {MAX_PART} characters")]
    TooLong {
        /// `subject`, `text` or `html`.
        part: &'static str,
    },
    /// The subject is blank.
    #[error("subject: must not be empty")]
    EmptySubject,
    /// A part does not compile.
    #[error("{part}: {source:#}")]
    Syntax {
        /// `subject`, `txt` or `html`.
        part: &'static str,
        /// minijinja's error (with the line).
        #[source]
        source: std::sync::Arc<minijinja::Error>,
    },
    /// A part failed while rendering.
    #[error("{part}: {source:#}")]
    Render {
        /// `subject`, `txt` or `html`.
        part: &'static str,
        /// minijinja's error (with the line).
        #[source]
        source: std::sync::Arc<minijinja::Error>,
    },
}

/// A template compiled, with the sources it was compiled from.
struct Compiled {
    sources: Template,
    env: minijinja::Environment<'static>,
}

const PARTS: [&str; 3] = ["subject", "txt", "html"];

impl Compiled {
    fn new(name: &str, template: &Template) -> Result<Compiled, TemplateError> {
        let mut env = environment();
        for (&part, source) in PARTS
            .iter()
            .zip([&template.subject, &template.text, &template.html])
        {
            env.add_template_owned(format!("{name}.{part}"), source.clone())
                .map_err(|e| TemplateError::Syntax {
                    part,
                    source: std::sync::Arc::new(e),
                })?;
        }
        Ok(Compiled {
            sources: template.clone(),
            env,
        })
    }

    fn render(&self, name: &str, ctx: &Value) -> Result<Rendered, TemplateError> {
        let part = |part: &'static str| {
            self.env
                .get_template(&format!("{name}.{part}"))
                .and_then(|t| t.render(ctx))
                .map_err(|e| TemplateError::Render {
                    part,
                    source: std::sync::Arc::new(e),
                })
        };
        let subject = part("subject")?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: part("txt")?,
            html: part("html")?,
        })
    }
}

/// Renders `template` with `ctx` (compiling it first).
pub fn render(name: &str, template: &Template, ctx: &Value) -> Result<Rendered, TemplateError> {
    Compiled::new(name, template)?.render(name, ctx)
}

/// Compiled templates by name, kept by the notifier: compiling a template for every
/// message was 4 % of the server's CPU under checkout load. A stored edit changes the
/// sources, and the next message compiles again.
#[derive(Default)]
pub struct Cache(std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<Compiled>>>);

impl Cache {
    /// Renders `template` with `ctx`, compiling it only if these sources are new.
    pub fn render(
        &self,
        name: &str,
        template: &Template,
        ctx: &Value,
    ) -> Result<Rendered, TemplateError> {
        let compiled = {
            let mut cache = self.0.lock().expect("template cache lock");
            match cache.get(name).filter(|c| c.sources == *template) {
                Some(c) => c.clone(),
                None => {
                    let c = std::sync::Arc::new(Compiled::new(name, template)?);
                    cache.insert(name.to_owned(), c.clone());
                    c
                }
            }
        };
        compiled.render(name, ctx)
    }
}

/// A context with every field a template may use, for checking templates.
pub fn sample_context() -> Value {
    json!({
        "shop": "Emporium",
        "reason": "card declined",
        "order": {
            "id": "0123456789abcdef0123456789abcdef", "number": "0123-4567", "email": "ada@example.com",
            "status": "paid", "currency": "USD", "subtotal": 2500, "total": 2500,
            "items": [{"sku": "HELM-01", "name": "Aurora <EVA> Helmet", "quantity": 1,
                       "unit_price": 2500, "line_total": 2500}],
            "shipping_address": {"name": "Ada", "line1": "1 Orbit Way", "line2": null,
                                 "city": "Tranquility Base", "postal_code": "00001", "country": "US"},
            "discounts": [{"code": "SPRING10", "automatic": false, "amount": 250}],
            "shipping": 490, "shipping_method": "Standard",
            "tax": [{"name": "VAT", "rate": "19%", "amount": 428}], "tax_included": false,
            "refunded": 0,
            "carrier": "Lunar Post", "tracking": "LP-1"
        },
        "refund_amount": 2500,
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "token": "0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "expires_in_minutes": 60,
        "cart": {"id": "c", "currency": "USD", "total": 2500,
                 "items": [{"sku": "HELM-01", "name": "Aurora Helmet", "quantity": 1,
                            "unit_price": 2500, "line_total": 2500}]}
    })
}

/// Checks a template: sizes, and every part compiles and renders with the sample context.
pub fn check(name: &str, template: &Template) -> Result<(), TemplateError> {
    for (part, source) in [
        ("subject", &template.subject),
        ("text", &template.text),
        ("html", &template.html),
    ] {
        if source.chars().count() > MAX_PART {
            return Err(TemplateError::TooLong { part });
        }
    }
    if template.subject.trim().is_empty() {
        return Err(TemplateError::EmptySubject);
    }
    render(name, template, &sample_context()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_renders_and_html_is_escaped() {
        for name in NAMES {
            let t = default_template(name).unwrap();
            check(name, &t).unwrap();
        }
        let r = render(
            "order_confirmation",
            &default_template("order_confirmation").unwrap(),
            &sample_context(),
        )
        .unwrap();
        assert_eq!(r.subject, "Your order 0123-4567 is confirmed");
        assert!(r.text.contains("Aurora <EVA> Helmet") && r.text.contains("25.00 USD"));
        assert!(r.html.contains("Aurora &lt;EVA&gt; Helmet"), "{}", r.html);
        assert!(!r.html.contains("<EVA>"));
    }

    #[test]
    fn broken_templates_are_refused() {
        let mut t = default_template("order_shipped").unwrap();
        t.text = "{% for x in %}".into();
        let e = check("order_shipped", &t).unwrap_err();
        assert!(
            matches!(e, TemplateError::Syntax { part: "txt", .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("txt: "), "{e}");
        let mut t = default_template("order_shipped").unwrap();
        t.html = "{{ order.total|nosuchfilter }}".into();
        assert!(check("order_shipped", &t).is_err());
        let mut t = default_template("order_shipped").unwrap();
        t.subject = " ".into();
        assert!(matches!(
            check("order_shipped", &t),
            Err(TemplateError::EmptySubject)
        ));
    }

    #[test]
    fn money_formats_minor_units() {
        assert_eq!(money(123456, "USD".into()), "1234.56 USD");
        assert_eq!(money(5, "EUR".into()), "0.05 EUR");
    }
}
