//! A fleet given as the API's own objects (`simulate --fleet-file`), to replay
//! answers captured from the real service, or a fleet written by hand, through
//! the whole job. The records are served exactly as they are in the file, unknown
//! fields and odd values included.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::model::{kind_of, mend_record, RawInstance};

/// The instance objects of a fleet file, in the order the file lists them, each
/// with its text as the file has it: that text is what the simulator serves,
/// byte for byte (numbers as written, key order, even repeated keys).
///
/// The file is a sequence of JSON values, each one of:
/// - a `DescribeAndroidInstances` answer (an object with `InstanceModel`): its
///   instances, so captured pages can simply be concatenated;
/// - an array of instance objects;
/// - one instance object (so JSON Lines work too).
pub fn parse_fleet_file(text: &str) -> Result<Vec<RawInstance>, String> {
    let mut records = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    for (n, value) in stream.enumerate() {
        let value = value.map_err(|e| format!("not JSON: {e}"))?;
        let which = n + 1;
        match kind_of(value) {
            "an object" => {
                let object = fields_of(value)?;
                if !object.contains_key("InstanceModel") {
                    records.push(RawInstance {
                        fields: object,
                        text: value.to_owned(),
                        mended: Vec::new(),
                        unreadable: None,
                    });
                    continue;
                }
                #[derive(serde::Deserialize)]
                struct Answer<'a> {
                    #[serde(rename = "InstanceModel", borrow)]
                    instance_model: Option<&'a RawValue>,
                }
                let answer: Answer =
                    serde_json::from_str(value.get()).map_err(|e| format!("not JSON: {e}"))?;
                match answer.instance_model {
                    Some(items) if kind_of(items) == "a list" => {
                        push_all(&mut records, items, which)?
                    }
                    // null (serde reads it as None): an answer without instances.
                    None => {}
                    Some(_) => {
                        return Err(format!(
                            "value {which}: InstanceModel is not an array of instances"
                        ))
                    }
                }
            }
            "a list" => push_all(&mut records, value, which)?,
            _ => {
                return Err(format!(
                    "value {which} is {}, not an answer, an instance or an array of instances",
                    kind_of(value)
                ))
            }
        }
    }
    if records.is_empty() {
        return Err("no instance in it".into());
    }
    Ok(records)
}

/// A record's region (`RegionId`), if it names one.
pub fn region_of(record: &Map<String, Value>) -> Option<&str> {
    record
        .get("RegionId")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
}

/// The regions the records name, sorted, each once.
pub fn regions_of(records: &[RawInstance]) -> Vec<String> {
    let mut regions: Vec<String> = records
        .iter()
        .filter_map(|r| region_of(&r.fields))
        .map(str::to_owned)
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

fn push_all(records: &mut Vec<RawInstance>, items: &RawValue, which: usize) -> Result<(), String> {
    let items: Vec<&RawValue> =
        serde_json::from_str(items.get()).map_err(|e| format!("not JSON: {e}"))?;
    for (i, item) in items.into_iter().enumerate() {
        if kind_of(item) != "an object" {
            return Err(format!(
                "value {which}, element {i}: {} where an instance object belongs",
                kind_of(item)
            ));
        }
        records.push(RawInstance {
            fields: fields_of(item)?,
            text: item.to_owned(),
            mended: Vec::new(),
            unreadable: None,
        });
    }
    Ok(())
}

/// An object's fields, read as the job reads a record (a number past a float's
/// range as its text, see [`mend_record`]), so that the simulator can serve what
/// the job must withstand; its text is served as written all the same.
fn fields_of(object: &RawValue) -> Result<Map<String, Value>, String> {
    serde_json::from_str(object.get()).or_else(|e| {
        mend_record(object.get())
            .map(|record| record.fields)
            .ok_or_else(|| format!("not JSON: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(records: &[RawInstance]) -> Vec<&str> {
        records.iter().map(|r| r.instance_id().unwrap()).collect()
    }

    #[test]
    fn answers_arrays_and_single_instances_all_read() {
        let text = r#"
            {"RequestId":"R1","TotalCount":3,"NextToken":"t","InstanceModel":[
                {"AndroidInstanceId":"acp-1","RegionId":"cn-hangzhou"},
                {"AndroidInstanceId":"acp-2","RegionId":"cn-shanghai"}]}
            {"RequestId":"R2","TotalCount":3,"NextToken":"","InstanceModel":null}
            [{"AndroidInstanceId":"acp-3","RegionId":"cn-hangzhou","Cpu":"four"}]
            {"AndroidInstanceId":"acp-4"}
        "#;
        let records = parse_fleet_file(text).unwrap();
        assert_eq!(ids(&records), ["acp-1", "acp-2", "acp-3", "acp-4"]);
        // Served as written, odd values included, the text byte for byte.
        assert_eq!(records[2].fields["Cpu"], "four");
        assert_eq!(
            records[1].text.get(),
            r#"{"AndroidInstanceId":"acp-2","RegionId":"cn-shanghai"}"#
        );
        let exact = r#"{"AndroidInstanceId":"acp-5", "Zeta":1.10,"Big":1e2,"Big":-0}"#;
        assert_eq!(parse_fleet_file(exact).unwrap()[0].text.get(), exact);
        assert_eq!(regions_of(&records), ["cn-hangzhou", "cn-shanghai"]);
    }

    #[test]
    fn what_is_not_a_fleet_is_refused_saying_where() {
        for (text, expected) in [
            ("", "no instance"),
            (r#"{"RequestId":"R","InstanceModel":[]}"#, "no instance"),
            ("[1]", "value 1, element 0: a number"),
            (r#"{"AndroidInstanceId":"a"} "x""#, "value 2 is a string"),
            (r#"{"InstanceModel":{"a":1}}"#, "value 1: InstanceModel"),
            (r#"[{"AndroidInstanceId":"a"},"#, "not JSON"),
        ] {
            let err = parse_fleet_file(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
