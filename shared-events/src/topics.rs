//! Topic names and their default shape.

/// The topic every order event is published to.
pub const ORDERS: &str = "orders";

/// Default partition count of [`ORDERS`]; the key (order id) spreads orders over them.
pub const ORDERS_PARTITIONS: i32 = 6;

/// Default retention of [`ORDERS`], in hours (7 days): how long a stalled
/// consumer may stay behind before records it never read are deleted.
pub const ORDERS_RETENTION_HOURS: u64 = 168;

/// Default retention of each consumer's retry topic ([`retry`]), in hours
/// (7 days): how long a replay waits for its consumer.
pub const RETRY_RETENTION_HOURS: u64 = 168;

/// Default retention of each consumer's dead-letter topic ([`dead_letter`]),
/// in hours (30 days): how long an operator has to look at a refused record
/// and replay it.
pub const DEAD_LETTER_RETENTION_HOURS: u64 = 720;

/// How a record's key picks its partition, in librdkafka's terms: the
/// partitioner of Kafka's Java client (murmur2 of the key's bytes, made
/// positive, modulo the partition count). librdkafka's own default
/// (`consistent_random`, CRC32) would put an order on another partition than
/// a Java producer, Kafka Connect or `kafka-console-producer` does with the
/// same key, and per-key order holds only within a partition: every producer
/// of this project that writes keyed records sets this one.
pub const PARTITIONER: &str = "murmur2_random";

/// The partition Kafka's Java client (and [`PARTITIONER`]) picks for `key`
/// among `partitions`: `toPositive(murmur2(key)) % partitions`.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    key_hash(key) % partitions.max(1)
}

/// The part of [`partition_of`] that does not depend on the partition count:
/// `toPositive(murmur2(key))`, never negative. The outbox stores it with each
/// row, so the relay can tell a row's partition in SQL (`key_hash % partitions`).
pub fn key_hash(key: &[u8]) -> i32 {
    i32::try_from(murmur2(key) & 0x7fff_ffff).unwrap_or(0)
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c), as the Java client hashes keys.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The dead-letter topic of one consumer of `source`, e.g. `orders.dlq.invoicing`.
pub fn dead_letter(source: &str, consumer: &str) -> String {
    format!("{source}.dlq.{consumer}")
}

/// The retry topic of one consumer of `source`, e.g. `orders.retry.invoicing`:
/// where an operator replays that consumer's dead letters. Only that
/// consumer's group reads it, so a replay never reaches a consumer that did
/// not refuse the record.
pub fn retry(source: &str, consumer: &str) -> String {
    format!("{source}.retry.{consumer}")
}

#[cfg(test)]
mod tests {
    /// Values of Kafka's own `UtilsTest.testMurmur2` and of the Java client's
    /// partitioner, so the hash is Kafka's and not merely some murmur2.
    #[test]
    fn keys_hash_and_partition_as_in_kafkas_java_client() {
        let cases: [(&str, i32); 6] = [
            ("21", -973932308),
            ("foobar", -790332482),
            ("a-little-bit-long-string", -985981536),
            ("a-little-bit-longer-string", -1486304829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            ("abc", 479470107),
        ];
        for (key, expected) in cases {
            assert_eq!(super::murmur2(key.as_bytes()) as i32, expected, "{key}");
        }
        assert_eq!(
            super::partition_of(b"foobar", 6),
            ((-790332482_i32 as u32 & 0x7fff_ffff) % 6) as i32
        );
    }

    #[test]
    fn dead_letter_topics_are_named_per_consumer() {
        assert_eq!(
            super::dead_letter(super::ORDERS, "invoicing"),
            "orders.dlq.invoicing"
        );
        assert_eq!(
            super::dead_letter(super::ORDERS, "shipping"),
            "orders.dlq.shipping"
        );
        assert_eq!(
            super::retry(super::ORDERS, "invoicing"),
            "orders.retry.invoicing"
        );
    }
}
