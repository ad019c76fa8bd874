//! Past orders from another system: the import format of `POST /admin/orders/import`
//! (JSON array or NDJSON of `{"id", "created_at", "email"?, "items": [{"sku", "quantity",
//! "unit_price"?}]}`) and the UCI "Online Retail" CSV, cleaned as its SOURCE.md says.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::import::{NotAnArray, Numbered, split_records};
use super::{Invalid, Millis, Sku};

/// A line of a past order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastItem {
    /// What.
    pub sku: Sku,
    /// How many.
    pub quantity: u32,
    /// Price per unit (minor units), if known.
    pub unit_price: Option<u64>,
}

/// An order from another system, kept as history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastOrder {
    /// Its id in the other system (1–64 visible characters).
    pub id: String,
    /// When it was placed.
    pub created_at: Millis,
    /// The shopper, if known.
    pub email: Option<String>,
    /// Lines (distinct SKUs; repeated SKUs are summed).
    pub items: Vec<PastItem>,
}

/// Most lines in one past order.
pub const MAX_ITEMS: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemIn {
    sku: String,
    quantity: i64,
    #[serde(default)]
    unit_price: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderIn {
    id: Value,
    created_at: Value,
    #[serde(default)]
    email: Option<String>,
    items: Vec<ItemIn>,
}

/// Parses `2011-06-30T12:00:00Z`, `2011-06-30 12:00:00` (UTC) or milliseconds.
pub fn parse_time(v: &Value) -> Option<Millis> {
    match v {
        Value::Number(n) => n.as_i64().filter(|ms| *ms >= 0),
        Value::String(s) => {
            use time::format_description::well_known::Rfc3339;
            if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
                return Some((t.unix_timestamp_nanos() / 1_000_000) as Millis);
            }
            let fmt =
                time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
            time::PrimitiveDateTime::parse(s, &fmt)
                .ok()
                .map(|t| (t.assume_utc().unix_timestamp_nanos() / 1_000_000) as Millis)
        }
        _ => None,
    }
}

fn order_id(v: &Value) -> Result<String, Invalid> {
    let s = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        _ => return Err(Invalid::new("id", "must be a string or a number")),
    };
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Invalid::new("id", "1 to 64 visible ASCII characters"));
    }
    Ok(s)
}

/// Sums repeated SKUs, keeping the first price seen.
fn merge(items: Vec<PastItem>) -> Vec<PastItem> {
    let mut out: Vec<PastItem> = Vec::with_capacity(items.len());
    let mut at: HashMap<Sku, usize> = HashMap::new();
    for it in items {
        match at.get(&it.sku) {
            Some(&i) => out[i].quantity = out[i].quantity.saturating_add(it.quantity),
            None => {
                at.insert(it.sku.clone(), out.len());
                out.push(it);
            }
        }
    }
    out
}

fn map_order(v: Value) -> Result<PastOrder, Invalid> {
    let o: OrderIn = serde_json::from_value(v).map_err(|e| Invalid::new("order", e.to_string()))?;
    let id = order_id(&o.id)?;
    let created_at = parse_time(&o.created_at)
        .ok_or_else(|| Invalid::new("created_at", "an RFC 3339 time or milliseconds"))?;
    let email = o.email.as_deref().map(super::parse_email).transpose()?;
    if o.items.is_empty() || o.items.len() > MAX_ITEMS {
        return Err(Invalid::new("items", format!("1 to {MAX_ITEMS} lines")));
    }
    let mut items = Vec::with_capacity(o.items.len());
    for it in o.items {
        if !(1..=1_000_000).contains(&it.quantity) {
            return Err(Invalid::new("quantity", "between 1 and 1,000,000"));
        }
        if it.unit_price.is_some_and(|p| p < 0) {
            return Err(Invalid::new("unit_price", "must not be negative"));
        }
        items.push(PastItem {
            sku: Sku::parse(&it.sku)?,
            quantity: it.quantity as u32,
            unit_price: it.unit_price.map(|p| p as u64),
        });
    }
    Ok(PastOrder {
        id,
        created_at,
        email,
        items: merge(items),
    })
}

/// Parses an import body; each record succeeds or fails on its own, with its line number.
pub fn parse_past_orders(body: &str) -> Result<Vec<Numbered<PastOrder>>, NotAnArray> {
    Ok(split_records(body)?
        .into_iter()
        .map(|(line, r)| (line, r.and_then(|v| Ok(map_order(v)?))))
        .collect())
}

/// Stock codes of the UCI file that are fees, postage or adjustments, not products.
fn uci_is_product(code: &str) -> bool {
    const NOT_PRODUCTS: [&str; 11] = [
        "POST",
        "DOT",
        "M",
        "m",
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",
        "D",
        "S",
        "PADS",
        "B",
    ];
    !(NOT_PRODUCTS.contains(&code)
        || code == "C2"
        || code.starts_with("DCGS")
        || code.starts_with("gift_0001"))
}

/// What reading the UCI CSV produced.
#[derive(Debug, Default)]
pub struct UciHistory {
    /// Orders in file order (one per kept invoice).
    pub orders: Vec<PastOrder>,
    /// Rows dropped by the cleaning (cancellations, adjustments, non-products, bad rows).
    pub dropped_rows: usize,
    /// Product names by stock code (the most frequent description).
    pub names: HashMap<String, String>,
}

/// Reads the UCI "Online Retail" CSV: drops cancellations (`C…`), adjustments (`A…`),
/// non-positive quantities and non-product stock codes, and groups the rest by invoice.
pub fn read_uci(reader: impl std::io::Read) -> Result<UciHistory, csv::Error> {
    let mut rdr = csv::Reader::from_reader(reader);
    let mut out = UciHistory::default();
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut name_votes: HashMap<(String, String), u32> = HashMap::new();
    for row in rdr.records() {
        let row = row?;
        let field = |i: usize| row.get(i).unwrap_or("").trim();
        let (invoice, code, desc) = (field(0), field(1), field(2));
        let quantity: i64 = field(3).parse().unwrap_or(0);
        let price: f64 = field(5).parse().unwrap_or(-1.0);
        let keep = !invoice.is_empty()
            && !invoice.starts_with('C')
            && !invoice.starts_with('A')
            && quantity > 0
            && uci_is_product(code);
        let (Some(created_at), Ok(sku)) = (
            parse_time(&Value::String(field(4).to_owned())),
            Sku::parse(code),
        ) else {
            out.dropped_rows += 1;
            continue;
        };
        if !keep {
            out.dropped_rows += 1;
            continue;
        }
        if !desc.is_empty() {
            *name_votes
                .entry((code.to_owned(), desc.to_owned()))
                .or_default() += 1;
        }
        let item = PastItem {
            sku,
            quantity: quantity.min(1_000_000) as u32,
            unit_price: (price >= 0.0).then(|| (price * 100.0).round() as u64),
        };
        match at.get(invoice) {
            Some(&i) => out.orders[i].items.push(item),
            None => {
                at.insert(invoice.to_owned(), out.orders.len());
                out.orders.push(PastOrder {
                    id: format!("uci-{invoice}"),
                    created_at,
                    email: None,
                    items: vec![item],
                });
            }
        }
    }
    for o in &mut out.orders {
        o.items = merge(std::mem::take(&mut o.items));
    }
    let mut best: HashMap<String, (u32, String)> = HashMap::new();
    for ((code, desc), n) in name_votes {
        let e = best.entry(code).or_insert((0, String::new()));
        if n > e.0 || (n == e.0 && desc < e.1) {
            *e = (n, desc);
        }
    }
    out.names = best.into_iter().map(|(k, (_, d))| (k, d)).collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_records_are_checked_one_by_one() {
        let body = r#"{"id": "A1", "created_at": "2011-06-30T12:00:00Z", "items": [{"sku": "X", "quantity": 2}, {"sku": "X", "quantity": 1, "unit_price": 250}]}
{"id": "A2", "created_at": "yesterday", "items": [{"sku": "X", "quantity": 1}]}
{"id": 3, "created_at": 1300000000000, "email": "a@b.co", "items": [{"sku": "Y", "quantity": 1}]}
{"id": "A4", "created_at": 1, "items": []}"#;
        let parsed = parse_past_orders(body).unwrap();
        assert_eq!(parsed.len(), 4);
        let first = parsed[0].1.as_ref().unwrap();
        assert_eq!(first.items.len(), 1, "repeated SKUs are summed");
        assert_eq!(first.items[0].quantity, 3);
        assert!(
            parsed[1]
                .1
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("created_at")
        );
        assert_eq!(parsed[2].1.as_ref().unwrap().id, "3");
        assert!(parsed[3].1.is_err());
    }

    #[test]
    fn the_uci_file_is_cleaned_as_documented() {
        let csv = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n\
536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n\
536365,71053,\"WHITE METAL LANTERN, LARGE\",6,2010-12-01 08:26:00,3.39,17850,United Kingdom\n\
536365,POST,POSTAGE,1,2010-12-01 08:26:00,18,17850,United Kingdom\n\
C536379,71053,WHITE METAL LANTERN,-1,2010-12-01 09:41:00,3.39,14527,United Kingdom\n\
536380,71053,WHITE METAL LANTERN,0,2010-12-01 09:41:00,3.39,14527,United Kingdom\n\
536381,22386,JUMBO BAG,10,2010-12-01 09:45:00,1.95,,United Kingdom\n";
        let h = read_uci(csv.as_bytes()).unwrap();
        assert_eq!(h.orders.len(), 2);
        assert_eq!(h.orders[0].items.len(), 2);
        assert_eq!(h.orders[0].items[1].unit_price, Some(339));
        assert_eq!(h.dropped_rows, 3);
        assert_eq!(h.names["71053"], "WHITE METAL LANTERN, LARGE");
    }
}
