//! The apply statements: SQL files under `sql/` with `{{...}}` placeholders filled
//! once, at startup, with column lists derived from [`InstanceRow::columns`] and the
//! configured volatile fields. Generating the lists keeps the ~56 typed columns in
//! one place instead of copied into every statement.

use crate::normalize::InstanceRow;

/// The column names and Postgres types of the typed instance columns, in order.
pub(crate) fn typed_columns() -> Vec<(&'static str, &'static str)> {
    InstanceRow::default()
        .columns()
        .iter()
        .map(|(name, v)| (*name, v.sql_type()))
        .collect()
}

pub(crate) struct ApplySql {
    pub classify: String,
    pub deletion_evidence: &'static str,
    pub mark_deleted: &'static str,
    pub close_versions: &'static str,
    pub insert_versions: String,
    pub insert_deleted_versions: String,
    pub insert_changes: String,
    pub insert_instances: String,
    pub update_instances: String,
    pub rehash_instances: &'static str,
    pub delete_instances: &'static str,
    pub clear_disks_tags: &'static str,
    pub refill_disks_tags: String,
    pub demote_direct_load: String,
}

impl ApplySql {
    pub fn new(volatile: &[String]) -> Result<Self, String> {
        let cols = typed_columns();
        for v in volatile {
            if v == "instance_id" || !cols.iter().any(|(c, _)| c == v) {
                return Err(format!(
                    "volatile field {v:?} is not a typed column of ecp.instances"
                ));
            }
        }
        // instance_id is the join key, never a compared or updated value.
        let data: Vec<&str> = cols
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| *c != "instance_id")
            .collect();
        let is_volatile = |c: &&str| volatile.iter().any(|v| v == c);
        let tracked: Vec<&str> = data.iter().copied().filter(|c| !is_volatile(c)).collect();
        let mut vol: Vec<&str> = data.iter().copied().filter(is_volatile).collect();
        // raw changes when anything does; compared with the volatile columns so a
        // field the typed schema lacks still reaches ecp.instances.raw.
        vol.push("raw");
        let mut tracked_all = tracked.clone();
        tracked_all.extend(["tags", "biz_tags", "disks"]);

        let prefixed = |p: &str, list: &[&str]| {
            list.iter()
                .map(|c| format!("{p}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let field_values = tracked
            .iter()
            .map(|c| format!("('{c}', to_jsonb(i.{c}), to_jsonb(s.{c}))"))
            .collect::<Vec<_>>()
            .join(",\n        ");
        let set_typed = data
            .iter()
            .map(|c| format!("{c} = s.{c}"))
            .collect::<Vec<_>>()
            .join(",\n    ");
        let fill = |template: &str| {
            template
                .replace("{{typed_cols}}", &data.join(", "))
                .replace("{{s_typed_cols}}", &prefixed("s", &data))
                .replace("{{i_typed_cols}}", &prefixed("i", &data))
                .replace("{{tracked_s}}", &prefixed("s", &tracked_all))
                .replace("{{tracked_i}}", &prefixed("i", &tracked_all))
                // raw by its text: jsonb takes 4096 and 4096.0 for equal, but
                // keeps each as written, and raw is the record as the API sent
                // it last.
                .replace(
                    "{{volatile_s}}",
                    &prefixed("s", &vol).replace("s.raw", "s.raw::text"),
                )
                .replace(
                    "{{volatile_i}}",
                    &prefixed("i", &vol).replace("i.raw", "i.raw::text"),
                )
                .replace("{{field_values}}", &field_values)
                .replace("{{set_typed}}", &set_typed)
                .replace(
                    "{{max_tag_row_bytes}}",
                    &crate::normalize::MAX_TAG_ROW_BYTES.to_string(),
                )
        };
        Ok(ApplySql {
            classify: fill(include_str!("sql/classify.sql")),
            deletion_evidence: include_str!("sql/deletion_evidence.sql"),
            mark_deleted: include_str!("sql/mark_deleted.sql"),
            close_versions: include_str!("sql/close_versions.sql"),
            insert_versions: fill(include_str!("sql/insert_versions.sql")),
            insert_deleted_versions: fill(include_str!("sql/insert_deleted_versions.sql")),
            insert_changes: fill(include_str!("sql/insert_changes.sql")),
            insert_instances: fill(include_str!("sql/insert_instances.sql")),
            update_instances: fill(include_str!("sql/update_instances.sql")),
            rehash_instances: include_str!("sql/rehash_instances.sql"),
            delete_instances: include_str!("sql/delete_instances.sql"),
            clear_disks_tags: include_str!("sql/clear_disks_tags.sql"),
            refill_disks_tags: fill(include_str!("sql/refill_disks_tags.sql")),
            demote_direct_load: fill(include_str!("sql/demote_direct_load.sql")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let sql = ApplySql::new(&["rate".to_string()]).unwrap();
        for s in [
            &sql.classify,
            &sql.insert_versions,
            &sql.insert_deleted_versions,
            &sql.insert_changes,
            &sql.insert_instances,
            &sql.update_instances,
            &sql.refill_disks_tags,
            &sql.demote_direct_load,
        ] {
            assert!(!s.contains("{{"), "{s}");
        }
        assert!(!sql.insert_changes.contains("'rate'"));
        assert!(sql.insert_changes.contains("'session_status'"));
    }

    #[test]
    fn unknown_volatile_fields_are_refused() {
        assert!(ApplySql::new(&["no_such_column".to_string()]).is_err());
        assert!(ApplySql::new(&["instance_id".to_string()]).is_err());
    }
}
