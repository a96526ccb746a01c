//! The tests every consumer's tolerant reader must pass, written once:
//! `consumer_kit::reader_contract_tests!(MyConsumer);` in a consumer's crate
//! root generates them as `#[test]`s of a module `reader_contract`. They
//! need `proptest`, `serde_json` and `shared-events` with its `arbitrary`
//! feature among the consumer's dev-dependencies.
//!
//! - an event type the flow does not define is skipped, not refused;
//! - fields added to a v1 event (anywhere) change nothing the reader reads;
//! - whatever is valid under the producer's schema (any version) is read,
//!   or refused with a reason, never a panic;
//! - no record value at all makes the reader panic.
//!
//! What the reader must read from each golden sample, and which rules it
//! enforces, are the consumer's own tests.

/// Generates the reader contract tests of consumer type `$consumer`.
#[macro_export]
macro_rules! reader_contract_tests {
    ($consumer:ty) => {
        #[cfg(test)]
        mod reader_contract {
            use ::proptest::prelude::*;
            use ::serde_json::{Value, json};
            use ::shared_events::RawEnvelope;
            use ::shared_events::arbitrary::{
                event_valid_under_any_schema, read_or_refused_with_a_reason, record_value,
                valid_under_its_schema,
            };
            use $crate::Consumer as _;

            use super::*;

            fn read(
                envelope: &RawEnvelope,
            ) -> Result<
                Option<::messaging::reader::OrderEvent<<$consumer as $crate::Consumer>::Placed>>,
                ::messaging::inbox::Rejection,
            > {
                <$consumer>::default().read(envelope)
            }

            fn golden() -> Value {
                ::shared_events::samples::named("order_placed.v1.json")
                    .expect("the golden OrderPlaced sample")
                    .value()
            }

            fn envelope(value: &Value) -> RawEnvelope {
                RawEnvelope::from_json(value).expect("a JSON envelope")
            }

            #[test]
            fn unknown_event_types_are_skipped() {
                let mut value = golden();
                value["event_type"] = json!("OrderShipped");
                assert_eq!(read(&envelope(&value)), Ok(None));
            }

            /// Schema evolution: fields added to a v1 event change nothing
            /// this reader reads.
            #[test]
            fn fields_added_to_a_v1_event_change_nothing_it_reads() {
                let original = golden();
                let mut added = original.clone();
                added["data"]["gift_message"] = json!("Happy birthday");
                added["data"]["customer"]["loyalty_tier"] = json!("gold");
                added["data"]["lines"][1]["colour"] = json!("black");
                added["partition_hint"] = json!(3);
                assert!(valid_under_its_schema(&added), "still valid v1");
                assert_eq!(read(&envelope(&added)), read(&envelope(&original)));
            }

            proptest! {
                /// The contract test against the producer's schema: whatever is valid
                /// under it is read or refused with a reason, never a panic.
                #[test]
                fn every_event_valid_under_the_producers_schema_is_read_or_refused_with_a_reason(
                    event in event_valid_under_any_schema()
                ) {
                    if let Err(why) = read_or_refused_with_a_reason(&event, read) {
                        return Err(TestCaseError::fail(why));
                    }
                }

                #[test]
                fn no_record_value_makes_the_reader_panic(record in record_value()) {
                    if let Ok(env) = RawEnvelope::from_slice(&record) {
                        let _ = read(&env);
                    }
                }
            }
        }
    };
}
