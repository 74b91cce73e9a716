//! The two sides of a field mapping: the Outlook contact fields Mailroom can read (Graph's
//! `contact`, reference §5) and the HaloPSA user fields it can write (the `Users` schema), with
//! the default mappings an admin starts from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An Outlook contact field: its path in Graph's `contact` and its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContactField {
    pub key: &'static str,
    pub label: &'static str,
}

/// Every Outlook field a mapping can read. `emailAddresses[N]` is the address of the N-th
/// email; `businessAddress.city` a part of the business address.
pub const CONTACT_FIELDS: &[ContactField] = &[
    ContactField {
        key: "displayName",
        label: "Display name",
    },
    ContactField {
        key: "givenName",
        label: "First name",
    },
    ContactField {
        key: "middleName",
        label: "Middle name",
    },
    ContactField {
        key: "surname",
        label: "Last name",
    },
    ContactField {
        key: "nickName",
        label: "Nickname",
    },
    ContactField {
        key: "title",
        label: "Title (Mr, Ms, Dr…)",
    },
    ContactField {
        key: "emailAddresses[0]",
        label: "Email",
    },
    ContactField {
        key: "emailAddresses[1]",
        label: "Email 2",
    },
    ContactField {
        key: "emailAddresses[2]",
        label: "Email 3",
    },
    ContactField {
        key: "businessPhones[0]",
        label: "Business phone",
    },
    ContactField {
        key: "businessPhones[1]",
        label: "Business phone 2",
    },
    ContactField {
        key: "mobilePhone",
        label: "Mobile phone",
    },
    ContactField {
        key: "homePhones[0]",
        label: "Home phone",
    },
    ContactField {
        key: "jobTitle",
        label: "Job title",
    },
    ContactField {
        key: "department",
        label: "Department",
    },
    ContactField {
        key: "companyName",
        label: "Company",
    },
    ContactField {
        key: "officeLocation",
        label: "Office location",
    },
    ContactField {
        key: "profession",
        label: "Profession",
    },
    ContactField {
        key: "manager",
        label: "Manager",
    },
    ContactField {
        key: "assistantName",
        label: "Assistant",
    },
    ContactField {
        key: "businessAddress.street",
        label: "Business street",
    },
    ContactField {
        key: "businessAddress.city",
        label: "Business city",
    },
    ContactField {
        key: "businessAddress.state",
        label: "Business state",
    },
    ContactField {
        key: "businessAddress.postalCode",
        label: "Business postal code",
    },
    ContactField {
        key: "businessAddress.countryOrRegion",
        label: "Business country or region",
    },
    ContactField {
        key: "businessHomePage",
        label: "Web page",
    },
    ContactField {
        key: "personalNotes",
        label: "Notes",
    },
];

/// What kind of value a PSA user field holds (how Mailroom checks it before sending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Email,
    Phone,
    /// The site, by its name in HaloPSA (overrides matching by email domain).
    SiteName,
}

/// A HaloPSA user field (`Users` schema) a mapping can write. A custom field's key is
/// `custom:<name>` and it carries HaloPSA's id for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsaUserField {
    pub key: String,
    pub label: String,
    pub kind: FieldKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<i64>,
}

/// The key prefix of custom fields.
pub const CUSTOM_PREFIX: &str = "custom:";

fn field(key: &str, label: &str, kind: FieldKind) -> PsaUserField {
    PsaUserField {
        key: key.into(),
        label: label.into(),
        kind,
        custom_id: None,
    }
}

/// The custom fields a user record lists (`customfields: [{id, name, label}]`), as mapping
/// targets.
pub fn custom_fields_of(user: &serde_json::Map<String, Value>) -> Vec<PsaUserField> {
    user.get("customfields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let name = f.get("name")?.as_str()?;
            let id = f.get("id")?.as_f64()? as i64;
            let label = f.get("label").and_then(Value::as_str).unwrap_or(name);
            Some(PsaUserField {
                key: format!("{CUSTOM_PREFIX}{name}"),
                label: format!("{label} (custom)"),
                kind: FieldKind::Text,
                custom_id: Some(id),
            })
        })
        .collect()
}

/// The built-in HaloPSA user fields (from the `Users` schema of the PSA's OpenAPI document).
pub fn psa_user_fields() -> Vec<PsaUserField> {
    use FieldKind::*;
    let mut out = vec![
        field("name", "Name", Text),
        field("firstname", "First name", Text),
        field("surname", "Surname", Text),
        field("title", "Job title", Text),
        field("emailaddress", "Email address", Email),
        field("email2", "Email 2", Email),
        field("email3", "Email 3", Email),
        field("phonenumber", "Phone number", Phone),
        field("mobilenumber", "Mobile number", Phone),
        field("mobilenumber2", "Mobile number 2", Phone),
        field("homenumber", "Home number", Phone),
        field("fax", "Fax", Phone),
        field("department", "Department", Text),
        field("notes", "Notes", Text),
        field("site", "Site (by name)", SiteName),
    ];
    for n in 1..=5 {
        out.push(field(&format!("other{n}"), &format!("Other {n}"), Text));
    }
    out
}

/// One mapping: an Outlook field into a PSA user field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMapping {
    pub outlook: String,
    pub psa: String,
}

/// The mappings an admin starts from: names, the three addresses, phones, job title,
/// department.
pub fn default_mappings() -> Vec<FieldMapping> {
    [
        ("displayName", "name"),
        ("givenName", "firstname"),
        ("surname", "surname"),
        ("emailAddresses[0]", "emailaddress"),
        ("emailAddresses[1]", "email2"),
        ("emailAddresses[2]", "email3"),
        ("businessPhones[0]", "phonenumber"),
        ("mobilePhone", "mobilenumber"),
        ("jobTitle", "title"),
        ("department", "department"),
    ]
    .into_iter()
    .map(|(o, p)| FieldMapping {
        outlook: o.into(),
        psa: p.into(),
    })
    .collect()
}

/// Checks a set of mappings: every Outlook field known, every PSA field among `psa_fields`,
/// no PSA field twice, and a name and an email address mapped. The message says what to fix.
pub fn validate_mappings(
    mappings: &[FieldMapping],
    psa_fields: &[PsaUserField],
) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for m in mappings {
        if !CONTACT_FIELDS.iter().any(|f| f.key == m.outlook) {
            return Err(format!(
                "'{}' is not an Outlook contact field Mailroom reads; choose one from the list.",
                m.outlook
            ));
        }
        let Some(target) = psa_fields.iter().find(|f| f.key == m.psa) else {
            return Err(format!(
                "HaloPSA has no user field '{}' (any more); remove that mapping or choose another field.",
                m.psa
            ));
        };
        if seen.contains(&m.psa.as_str()) {
            return Err(format!(
                "'{}' is mapped twice; each HaloPSA field can take one Outlook field.",
                target.label
            ));
        }
        seen.push(&m.psa);
    }
    if !seen.contains(&"emailaddress") {
        return Err(
            "Map an Outlook email field to 'Email address': users are matched by it.".into(),
        );
    }
    if !seen.contains(&"name") {
        return Err("Map an Outlook field (Display name, usually) to 'Name': HaloPSA needs a name for every user.".into());
    }
    Ok(())
}

/// The value of an Outlook field in a contact (Graph's JSON), trimmed; `None` when empty.
pub fn contact_value(contact: &Value, key: &str) -> Option<String> {
    let value = if let Some((list, rest)) = key.split_once('[') {
        let index: usize = rest.trim_end_matches(']').parse().ok()?;
        let item = contact.get(list)?.get(index)?;
        if list == "emailAddresses" {
            item.get("address")?
        } else {
            item
        }
    } else if let Some((object, part)) = key.split_once('.') {
        contact.get(object)?.get(part)?
    } else {
        contact.get(key)?
    };
    let text = match value {
        Value::String(s) => s.trim().to_string(),
        Value::Null => return None,
        other => other.to_string(),
    };
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_defaults_are_valid_and_a_field_mapped_twice_is_refused() {
        let fields = psa_user_fields();
        validate_mappings(&default_mappings(), &fields).unwrap();
        let mut twice = default_mappings();
        twice.push(FieldMapping {
            outlook: "companyName".into(),
            psa: "title".into(),
        });
        let err = validate_mappings(&twice, &fields).unwrap_err();
        assert!(err.contains("'Job title' is mapped twice"), "{err}");
        let gone = vec![FieldMapping {
            outlook: "displayName".into(),
            psa: "CFlegacy".into(),
        }];
        assert!(validate_mappings(&gone, &fields)
            .unwrap_err()
            .contains("no user field 'CFlegacy'"));
        let no_email: Vec<FieldMapping> = default_mappings()
            .into_iter()
            .filter(|m| m.psa != "emailaddress")
            .collect();
        assert!(validate_mappings(&no_email, &fields)
            .unwrap_err()
            .contains("Email address"));
    }

    #[test]
    fn values_are_read_by_path() {
        let c = json!({
            "displayName": " Zoë Müller ",
            "emailAddresses": [{"name": "Zoë", "address": "zoe@fabrikam.test"}],
            "businessPhones": [],
            "businessAddress": {"city": "Seattle"},
            "mobilePhone": null,
        });
        assert_eq!(contact_value(&c, "displayName").unwrap(), "Zoë Müller");
        assert_eq!(
            contact_value(&c, "emailAddresses[0]").unwrap(),
            "zoe@fabrikam.test"
        );
        assert_eq!(contact_value(&c, "emailAddresses[1]"), None);
        assert_eq!(contact_value(&c, "businessPhones[0]"), None);
        assert_eq!(
            contact_value(&c, "businessAddress.city").unwrap(),
            "Seattle"
        );
        assert_eq!(contact_value(&c, "mobilePhone"), None);
    }
}
