//! The idempotency fingerprint: what tells a client's retry from a
//! different request sent under the same `Idempotency-Key`.

use sha2::{Digest, Sha256};

use crate::domain::NewOrder;

/// SHA-256 of the canonical form of the validated request, stored with an
/// `Idempotency-Key` to tell a retry from a different request under the same key.
///
/// The canonical form is computed from the parsed order, not the bytes sent,
/// so whitespace, key order, and spaces around names do not matter. Each
/// value is written with its length in front, so no two different orders
/// produce the same byte stream.
pub fn fingerprint(order: &NewOrder) -> [u8; 32] {
    fn put(hash: &mut Sha256, text: &str) {
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text.as_bytes());
    }
    let mut hash = Sha256::new();
    put(&mut hash, "order-service/place-order/v1");
    put(&mut hash, order.customer().name.as_str());
    put(&mut hash, order.customer().email.as_str());
    for a in [order.billing_address(), order.shipping_address()] {
        put(&mut hash, a.street.as_str());
        put(&mut hash, a.zip.as_str());
        put(&mut hash, a.city.as_str());
        put(&mut hash, a.country.as_str());
    }
    put(&mut hash, order.currency().as_str());
    hash.update((order.lines().len() as u64).to_be_bytes());
    for line in order.lines() {
        put(&mut hash, line.sku().as_str());
        put(&mut hash, line.name().as_str());
        hash.update(line.quantity().get().to_be_bytes());
        hash.update(line.unit_price().get().to_be_bytes());
    }
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::sample::{decode, valid};

    #[test]
    fn fingerprints_tell_different_orders_apart() {
        let a = decode(&valid()).unwrap();
        let mut v = valid();
        v["lines"][0]["quantity"] = json!(3);
        let b = decode(&v).unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&b));
        // Same text, split differently between two fields.
        let mut v = valid();
        v["billing_address"]["street"] = json!("1 Analytical Way1");
        v["billing_address"]["zip"] = json!("0115");
        assert_ne!(fingerprint(&decode(&v).unwrap()), fingerprint(&a));
    }
}
