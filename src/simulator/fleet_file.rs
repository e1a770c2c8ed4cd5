//! A fleet given as the API's own objects (`simulate --fleet-file`), to replay
//! answers captured from the real service, or a fleet written by hand, through
//! the whole job. The records are served exactly as they are in the file, unknown
//! fields and odd values included.

use serde_json::{Map, Value};

/// The instance objects of a fleet file, in the order the file lists them.
///
/// The file is a sequence of JSON values, each one of:
/// - a `DescribeAndroidInstances` answer (an object with `InstanceModel`): its
///   instances, so captured pages can simply be concatenated;
/// - an array of instance objects;
/// - one instance object (so JSON Lines work too).
pub fn parse_fleet_file(text: &str) -> Result<Vec<Map<String, Value>>, String> {
    let mut records = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (n, value) in stream.enumerate() {
        let value = value.map_err(|e| format!("not JSON: {e}"))?;
        let which = n + 1;
        match value {
            Value::Object(mut answer) if answer.contains_key("InstanceModel") => {
                match answer.remove("InstanceModel") {
                    Some(Value::Array(items)) => push_all(&mut records, items, which)?,
                    Some(Value::Null) => {}
                    _ => {
                        return Err(format!(
                            "value {which}: InstanceModel is not an array of instances"
                        ))
                    }
                }
            }
            Value::Object(instance) => records.push(instance),
            Value::Array(items) => push_all(&mut records, items, which)?,
            other => {
                return Err(format!(
                    "value {which} is {}, not an answer, an instance or an array of instances",
                    kind(&other)
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
pub fn regions_of(records: &[Map<String, Value>]) -> Vec<String> {
    let mut regions: Vec<String> = records
        .iter()
        .filter_map(region_of)
        .map(str::to_owned)
        .collect();
    regions.sort();
    regions.dedup();
    regions
}

fn push_all(
    records: &mut Vec<Map<String, Value>>,
    items: Vec<Value>,
    which: usize,
) -> Result<(), String> {
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(instance) => records.push(instance),
            other => {
                return Err(format!(
                    "value {which}, element {i}: {} where an instance object belongs",
                    kind(&other)
                ))
            }
        }
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(records: &[Map<String, Value>]) -> Vec<&str> {
        records
            .iter()
            .map(|r| r["AndroidInstanceId"].as_str().unwrap())
            .collect()
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
        // Served as written, odd values included.
        assert_eq!(records[2]["Cpu"], "four");
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
