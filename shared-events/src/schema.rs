//! JSON Schema (draft 2020-12) of the record values, generated from the types
//! of this crate, so the schema a registry or a consumer's contract check
//! reads cannot drift from what the producer writes.
//!
//! There is one file per event type and schema version
//! (`order_placed.v1.schema.json`), plus the envelope alone
//! (`envelope.schema.json`, whose `data` may be anything), committed under
//! `shared-events/schemas/` beside the golden samples. A test keeps each file
//! equal to what [`SchemaFile::generate`] returns (`UPDATE_SCHEMAS=1 cargo test
//! -p shared-events` rewrites them) and validates every golden sample against
//! them.
//!
//! The schemas leave `additionalProperties` open on purpose: adding a field
//! is the compatible change (old readers ignore it), so a record with a field
//! added is still valid under the version it says it is. Renaming or removing
//! a field, or changing its type, makes a record invalid under the old
//! schema: that is a new `schema_version`, with a file of its own, and the old
//! file stays for the records already written (see the README, "Schema
//! evolution").

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::envelope::{Envelope, Event, EventType};
use crate::order::{OrderCancelled, OrderPlaced};

/// Where the schema files live, relative to the crate.
pub const DIR: &str = "schemas";

/// The `$id` prefix of every schema: the file name follows it.
pub const ID_PREFIX: &str = "https://orderflow.dev/schemas/";

/// One committed schema file.
#[derive(Debug, Clone, Copy)]
pub struct SchemaFile {
    /// File name under `shared-events/schemas/`.
    pub name: &'static str,
    /// The committed text.
    pub json: &'static str,
    /// The event type and schema version it describes; `None` for the envelope alone.
    pub event: Option<(EventType, u32)>,
    generate: fn() -> Value,
}

impl SchemaFile {
    /// The schema as this code generates it now.
    pub fn generate(&self) -> Value {
        (self.generate)()
    }

    /// The schema as committed (`Value::Null` if the file is not JSON, which
    /// the equality test reports).
    pub fn committed(&self) -> Value {
        serde_json::from_str(self.json).unwrap_or(Value::Null)
    }

    /// The text the file must hold: the generated schema, pretty-printed.
    pub fn expected_text(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.generate()).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Every committed schema file.
pub const ALL: &[SchemaFile] = &[
    SchemaFile {
        name: "envelope.schema.json",
        json: include_str!("../schemas/envelope.schema.json"),
        event: None,
        generate: envelope,
    },
    SchemaFile {
        name: "order_placed.v1.schema.json",
        json: include_str!("../schemas/order_placed.v1.schema.json"),
        event: Some((EventType::OrderPlaced, 1)),
        generate: event::<OrderPlaced>,
    },
    SchemaFile {
        name: "order_cancelled.v1.schema.json",
        json: include_str!("../schemas/order_cancelled.v1.schema.json"),
        event: Some((EventType::OrderCancelled, 1)),
        generate: event::<OrderCancelled>,
    },
];

/// The committed schema of `event_type` at `schema_version`, if there is one.
pub fn of(event_type: EventType, schema_version: u32) -> Option<&'static SchemaFile> {
    ALL.iter()
        .find(|f| f.event == Some((event_type, schema_version)))
}

/// The committed schema of the envelope alone.
pub fn envelope_file() -> &'static SchemaFile {
    &ALL[0]
}

/// The file name of `event_type`'s schema at `version`, e.g. `order_placed.v1.schema.json`.
pub fn file_name(event_type: EventType, version: u32) -> String {
    let snake = match event_type {
        EventType::OrderPlaced => "order_placed",
        EventType::OrderCancelled => "order_cancelled",
    };
    format!("{snake}.v{version}.schema.json")
}

/// The `$id` of `event_type`'s schema at `version` (the `ce_dataschema` header).
pub fn id(event_type: EventType, version: u32) -> String {
    format!("{ID_PREFIX}{}", file_name(event_type, version))
}

fn generate<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    schema.to_value()
}

/// The envelope every record value is: its `data` may be any JSON value.
pub fn envelope() -> Value {
    let mut schema = generate::<Envelope<Value>>();
    identify(
        &mut schema,
        "envelope.schema.json",
        "Envelope",
        "The envelope around every event on the orders topic; `data` is the payload \
         its `event_type` and `schema_version` name.",
    );
    schema
}

/// The record value of an event of type `T` at the version this code writes:
/// the envelope with `event_type` and `schema_version` fixed and `data` of type `T`.
pub fn event<T: Event>() -> Value {
    let mut schema = generate::<Envelope<T>>();
    let name = file_name(T::TYPE, T::SCHEMA_VERSION);
    identify(
        &mut schema,
        &name,
        &format!("{} v{}", T::TYPE, T::SCHEMA_VERSION),
        &format!(
            "A record value of the orders topic holding `{}` version {}.",
            T::TYPE,
            T::SCHEMA_VERSION
        ),
    );
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.insert(
            "event_type".into(),
            json!({ "description": "The payload type.", "const": T::TYPE.as_str() }),
        );
        properties.insert(
            "schema_version".into(),
            json!({ "description": "The payload's schema version.", "const": T::SCHEMA_VERSION }),
        );
    }
    schema
}

/// Sets `$id`, `title` and `description`, keeping `$schema` first.
fn identify(schema: &mut Value, file: &str, title: &str, description: &str) {
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), Value::from(format!("{ID_PREFIX}{file}")));
        object.insert("title".into(), Value::from(title));
        object.insert("description".into(), Value::from(description));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::{ALL, envelope_file, of};
    use crate::samples;
    use crate::{EventType, RawEnvelope};

    fn validator(schema: &Value) -> jsonschema::Validator {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("not a valid schema: {e}"))
    }

    fn errors(schema: &Value, instance: &Value) -> Vec<String> {
        validator(schema)
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// The committed files are what the code generates. With
    /// `UPDATE_SCHEMAS=1` the files are rewritten instead (and the test then
    /// checks the rewrite).
    #[test]
    fn the_committed_schemas_equal_what_the_code_generates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(super::DIR);
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            for file in ALL {
                std::fs::write(dir.join(file.name), file.expected_text()).unwrap();
            }
        }
        for file in ALL {
            let on_disk = std::fs::read_to_string(dir.join(file.name)).unwrap();
            assert_eq!(
                on_disk,
                file.expected_text(),
                "shared-events/{}/{} differs from the schema the code generates; \
                 run `UPDATE_SCHEMAS=1 cargo test -p shared-events` and commit the result",
                super::DIR,
                file.name
            );
            assert_eq!(file.committed(), file.generate(), "{}", file.name);
        }
    }

    #[test]
    fn every_schema_is_a_draft_2020_12_schema() {
        for file in ALL {
            let schema = file.committed();
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                file.name
            );
            assert!(
                jsonschema::draft202012::meta::is_valid(&schema),
                "{}",
                file.name
            );
        }
    }

    #[test]
    fn every_golden_sample_is_valid_under_the_envelope_and_its_own_schema() {
        for sample in samples::ALL {
            let value = sample.value();
            let problems = errors(&envelope_file().committed(), &value);
            assert!(problems.is_empty(), "{}: {problems:?}", sample.name);

            let raw = RawEnvelope::from_slice(sample.json.as_bytes()).unwrap();
            let event_type = raw.known_type().unwrap();
            match of(event_type, raw.schema_version) {
                Some(file) => {
                    let problems = errors(&file.committed(), &value);
                    assert!(problems.is_empty(), "{}: {problems:?}", sample.name);
                }
                // A sample of a future version: no schema of this code
                // describes it, and the v1 schema must not pass it for v1.
                None => {
                    assert!(!sample.current, "{} has no schema", sample.name);
                    let v1 = of(event_type, 1).unwrap();
                    assert!(
                        !errors(&v1.committed(), &value).is_empty(),
                        "{} passes as v1",
                        sample.name
                    );
                }
            }
        }
    }

    /// Schema evolution, as the README documents it: a field added to a v1
    /// record leaves it valid v1; a field renamed or removed does not, so it
    /// needs a new version.
    #[test]
    fn an_added_field_stays_valid_v1_and_a_renamed_or_removed_one_does_not() {
        let v1 = of(EventType::OrderPlaced, 1).unwrap().committed();
        let sample = samples::named("order_placed.v1.json").unwrap().value();

        let mut added = sample.clone();
        added["data"]["gift_message"] = json!("Happy birthday");
        added["data"]["lines"][0]["colour"] = json!("silver");
        added["trace_flags"] = json!(1);
        assert_eq!(errors(&v1, &added), Vec::<String>::new());

        let mut renamed = sample.clone();
        let billing = renamed["data"]["billing_address"].take();
        let data = renamed["data"].as_object_mut().unwrap();
        data.remove("billing_address");
        data.insert("invoice_address".into(), billing);
        let problems = errors(&v1, &renamed);
        assert!(
            problems.iter().any(|p| p.contains("billing_address")),
            "{problems:?}"
        );

        let mut removed = sample;
        removed["data"]["customer"]
            .as_object_mut()
            .unwrap()
            .remove("email");
        let problems = errors(&v1, &removed);
        assert!(problems.iter().any(|p| p.contains("email")), "{problems:?}");
    }

    #[test]
    fn the_breaking_v2_sample_is_a_valid_envelope_but_not_valid_v1() {
        let value = samples::BREAKING_V2.value();
        assert_eq!(
            errors(&envelope_file().committed(), &value),
            Vec::<String>::new()
        );
        let mut as_v1 = value;
        as_v1["schema_version"] = json!(1);
        let v1 = of(EventType::OrderPlaced, 1).unwrap().committed();
        let problems = errors(&v1, &as_v1);
        assert!(
            problems.iter().any(|p| p.contains("billing_address")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.contains("email")), "{problems:?}");
    }

    #[test]
    fn each_event_schema_pins_its_type_and_version() {
        let placed = of(EventType::OrderPlaced, 1).unwrap().committed();
        let cancel = samples::named("order_cancelled.v1.json").unwrap().value();
        assert!(!errors(&placed, &cancel).is_empty());
        let mut v0 = samples::named("order_placed.v1.json").unwrap().value();
        v0["schema_version"] = json!(0);
        assert!(!errors(&placed, &v0).is_empty());
        let mut bad_id = samples::named("order_placed.v1.json").unwrap().value();
        bad_id["event_id"] = json!("not-a-uuid");
        assert!(!errors(&placed, &bad_id).is_empty(), "formats are checked");
    }
}
