//! The JSON Schema of catalogue files, generated from the same enums and fact tables that
//! validation uses, so editors can check and complete catalogue TOML (e.g. with taplo's
//! `#:schema` directive). `indicators/catalogue.schema.json` is this output; a test fails
//! when the two differ (regenerate with `databrain indicators schema`).

use crate::catalogue::{Aggregate, Direction, Domain, Kind};
use crate::facts::FACT_TABLES;
use crate::level::Level;
use crate::period::Grain;
use serde::Serialize;
use serde_json::{Value, json};

fn names<T: Serialize>(all: &[T]) -> Vec<Value> {
    all.iter()
        .map(|v| serde_json::to_value(v).expect("enum names serialise"))
        .collect()
}

/// The schema, as a JSON value.
pub fn catalogue_schema() -> Value {
    let facts: Vec<&str> = FACT_TABLES.iter().map(|t| t.name).collect();
    let string = |description: &str| json!({ "type": "string", "description": description });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://databrain.invalid/catalogue.schema.json",
        "title": "databrain indicator catalogue file",
        "description": "One TOML file per domain under indicators/catalogue/, each a list of [[indicator]] tables.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "indicator": { "type": "array", "items": { "$ref": "#/$defs/indicator" } }
        },
        "$defs": {
            "indicator": {
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "name_zh", "name_en", "domain", "unit", "kind", "direction", "levels", "grains", "description"],
                "properties": {
                    "id": { "type": "string", "pattern": "^[a-z0-9_]+$", "description": "Stable identifier used by the API, scenes and formulas." },
                    "name_zh": string("Chinese name."),
                    "name_en": string("English name."),
                    "domain": { "$ref": "#/$defs/domain" },
                    "unit": string("Unit of the value, e.g. ratio, h, per 10k residents."),
                    "kind": { "$ref": "#/$defs/kind" },
                    "per": { "type": "number", "exclusiveMinimum": 0, "description": "Scale of a rate: the value is per this many of the denominator." },
                    "direction": { "$ref": "#/$defs/direction" },
                    "levels": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/level" } },
                    "grains": { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/grain" } },
                    "numerator": { "$ref": "#/$defs/measure" },
                    "denominator": { "$ref": "#/$defs/measure" },
                    "formula": string("Derived indicators only: + - * / ( ) over numbers and other indicators' ids."),
                    "target": { "$ref": "#/$defs/target" },
                    "thresholds": { "$ref": "#/$defs/thresholds" },
                    "description": string("What is counted, over what, in which period."),
                    "standard": string("The standard the definition follows, e.g. GB/T 33358-2016, or \"modelled on ...\" where the definition only follows it."),
                    "iso": string("ISO 37120 / 37122 counterpart, where there is one.")
                },
                "allOf": [
                    {
                        "if": { "properties": { "kind": { "const": "derived" } } },
                        "then": { "required": ["formula"], "not": { "anyOf": [{ "required": ["numerator"] }, { "required": ["denominator"] }] } },
                        "else": { "required": ["numerator"], "not": { "required": ["formula"] } }
                    },
                    {
                        "if": { "properties": { "kind": { "enum": ["ratio", "rate", "mean"] } } },
                        "then": { "required": ["denominator"] }
                    },
                    {
                        "if": { "properties": { "kind": { "const": "rate" } } },
                        "then": { "required": ["per"] },
                        "else": { "not": { "required": ["per"] } }
                    }
                ]
            },
            "measure": {
                "type": "object",
                "additionalProperties": false,
                "required": ["fact", "agg"],
                "properties": {
                    "fact": { "enum": facts, "description": "The fact table summed over." },
                    "agg": { "$ref": "#/$defs/aggregate" },
                    "column": string("The column summed or counted distinctly (not for count)."),
                    "time": string("The timestamp column that places a row in a period; omitted for static measures such as residents."),
                    "filter": { "type": "array", "items": { "type": "string" }, "description": "Conditions, all of which a row must meet: `column OP operand`, `column IS [NOT] NULL` or `[NOT] boolean_column`." }
                }
            },
            "target": {
                "type": "object",
                "additionalProperties": false,
                "required": ["value", "year", "source"],
                "properties": {
                    "value": { "type": "number" },
                    "year": { "type": "integer" },
                    "source": { "type": "string" }
                }
            },
            "thresholds": {
                "type": "object",
                "additionalProperties": false,
                "required": ["warning", "critical"],
                "properties": {
                    "warning": { "type": "number" },
                    "critical": { "type": "number" }
                }
            },
            "domain": { "enum": names(&Domain::ALL) },
            "kind": { "enum": names(&Kind::ALL) },
            "direction": { "enum": names(&Direction::ALL) },
            "aggregate": { "enum": names(&Aggregate::ALL) },
            "level": { "enum": names(&Level::ALL) },
            "grain": { "enum": names(&Grain::ALL) }
        }
    })
}

/// The schema as the pretty-printed text of `indicators/catalogue.schema.json`.
pub fn catalogue_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&catalogue_schema()).expect("schema serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Catalogue;

    #[test]
    fn committed_schema_is_current() {
        let committed = include_str!("../catalogue.schema.json");
        assert!(
            committed == catalogue_schema_text(),
            "indicators/catalogue.schema.json is stale: run `databrain indicators schema > indicators/catalogue.schema.json`"
        );
    }

    /// The fields serde accepts, read from its unknown-field error.
    fn accepted_fields(toml_text: &str) -> Vec<String> {
        let e = Catalogue::from_sources([("t.toml".to_string(), toml_text.to_string())])
            .unwrap_err()
            .to_string();
        let list = e
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("no field list in {e}"));
        // `a`, `b`, `c` up to the end of the line: every other piece between backticks.
        let line = list.lines().next().unwrap_or("");
        let mut fields: Vec<String> = line
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        fields.sort();
        fields
    }

    fn schema_fields(def: &str) -> Vec<String> {
        let schema = catalogue_schema();
        let mut fields: Vec<String> = schema["$defs"][def]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        fields.sort();
        fields
    }

    #[test]
    fn schema_properties_are_the_fields_the_loader_accepts() {
        assert_eq!(
            accepted_fields("[[indicator]]\nbogus = 1\n"),
            schema_fields("indicator")
        );
        assert_eq!(
            accepted_fields("[[indicator]]\n[indicator.numerator]\nbogus = 1\n"),
            schema_fields("measure")
        );
    }
}
