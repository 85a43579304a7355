//! Importers: the only code of the crate that touches the disk.
//!
//! A directory is walked (sub-directories too, so `account/region/` layouts work); each
//! `.json` file is recognized by its top-level keys, whatever its name: AWS CLI output
//! (`Vpcs`, `SecurityGroups`, `Reservations`, …) or a Terraform plan (`format_version` with
//! `resource_changes`); each `.toml` file is rampart's own description. Files of the same
//! kind (one per region or account) are merged.

mod aws;
mod native;
mod terraform;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;

use crate::finding::{Finding, Severity, rules};
use crate::inventory::{Endpoint, Inventory};

/// The largest file read, so a wrong directory cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

/// The name of the config file that may sit beside the inventory; it is not inventory.
pub const CONFIG_FILE_NAME: &str = "network.toml";

/// Sub-directories deeper than this are not walked.
const MAX_DEPTH: usize = 4;

/// An inventory that cannot be read. Every variant names the file; parse errors also name
/// the place in it.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory or a file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is larger than [`MAX_FILE_BYTES`].
    #[error("{path} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A JSON file is malformed or holds a value of the wrong shape.
    #[error("{file}: invalid JSON at {json_path} (line {line}, column {column}): {message}")]
    Json {
        /// The file.
        file: String,
        /// Where in the document, such as `SecurityGroups[3].IpPermissions[0].IpRanges[0].CidrIp`.
        json_path: String,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A TOML file is malformed.
    #[error("{file}: invalid TOML: {message}")]
    Toml {
        /// The file.
        file: String,
        /// What is wrong, with the key.
        message: String,
    },
    /// A value is well-formed but unusable (a reference the TOML cannot resolve).
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing usable was found: an empty inventory must never pass a check.
    #[error(
        "no network resources found in {path}: expected AWS CLI JSON (Vpcs, Subnets, SecurityGroups, …), a Terraform plan (terraform show -json) or rampart TOML"
    )]
    Empty {
        /// The directory.
        path: PathBuf,
    },
}

/// Reads every inventory file under `dir` (except [`CONFIG_FILE_NAME`]).
pub fn load_inventory(dir: &Path) -> Result<Inventory, LoadError> {
    let mut files = Vec::new();
    walk(dir, 0, &mut files)?;
    files.sort();
    let mut inventory = Inventory::default();
    for path in files {
        let text = read_limited(&path)?;
        let name = path.display().to_string();
        let part = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => native::import(&name, &text)?,
            _ => import_json(&name, &text)?,
        };
        inventory.merge(part);
    }
    dedupe_endpoints(&mut inventory);
    if inventory.is_empty() {
        return Err(LoadError::Empty {
            path: dir.to_owned(),
        });
    }
    Ok(inventory)
}

/// Imports one JSON document (AWS CLI output or a Terraform plan); `name` is used in
/// errors and findings. A document with no known key yields a warning, not an error.
pub fn import_json(name: &str, text: &str) -> Result<Inventory, LoadError> {
    let keys: BTreeMap<String, IgnoredAny> = parse_json(name, text)?;
    let inventory = if keys.contains_key("format_version")
        && (keys.contains_key("resource_changes") || keys.contains_key("planned_values"))
    {
        let plan: serde_json::Value = parse_json(name, text)?;
        terraform::import(name, &plan)
    } else if keys
        .keys()
        .any(|k| aws::TOP_LEVEL_KEYS.contains(&k.as_str()))
    {
        aws::import(name, parse_json(name, text)?)
    } else {
        let mut inv = Inventory::default();
        inv.notes.push(
            Finding::new(
                rules::NOT_MODELLED,
                None,
                Severity::Warning,
                name,
                "file ignored: no top-level key of the AWS CLI (Vpcs, SecurityGroups, …) nor of a Terraform plan",
            )
            .in_file(name),
        );
        inv
    };
    Ok(Inventory {
        files: vec![name.to_owned()],
        ..inventory
    })
}

/// Imports one document of rampart's TOML description of networks, hosts and rules.
pub fn import_toml(name: &str, text: &str) -> Result<Inventory, LoadError> {
    native::import(name, text)
}

/// Deserializes JSON, naming the file and the JSON path of any error.
fn parse_json<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, LoadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(name, e))?;
    de.end().map_err(|e| LoadError::Json {
        file: name.to_owned(),
        json_path: ".".to_owned(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    Ok(value)
}

fn json_error(name: &str, e: serde_path_to_error::Error<serde_json::Error>) -> LoadError {
    let json_path = e.path().to_string();
    let inner = e.into_inner();
    LoadError::Json {
        file: name.to_owned(),
        json_path,
        line: inner.line(),
        column: inner.column(),
        message: inner.to_string(),
    }
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == CONFIG_FILE_NAME {
            continue;
        }
        if path.is_dir() {
            if depth < MAX_DEPTH {
                walk(&path, depth + 1, out)?;
            }
        } else if name.ends_with(".json") || name.ends_with(".toml") {
            out.push(path);
        }
    }
    Ok(())
}

fn read_limited(path: &Path) -> Result<String, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    std::fs::read_to_string(path).map_err(io)
}

/// The same interface appears in `describe-instances` and `describe-network-interfaces`;
/// keep one, filling what the first copy lacks from the others.
fn dedupe_endpoints(inventory: &mut Inventory) {
    let mut seen: BTreeMap<crate::ident::EndpointId, usize> = BTreeMap::new();
    let mut kept: Vec<Endpoint> = Vec::with_capacity(inventory.endpoints.len());
    for ep in std::mem::take(&mut inventory.endpoints) {
        match seen.get(&ep.id).and_then(|i| kept.get_mut(*i)) {
            Some(first) => {
                first.instance = first.instance.take().or(ep.instance);
                first.name = first.name.take().or(ep.name);
                first.address = first.address.or(ep.address);
                first.public_address = first.public_address.or(ep.public_address);
                first.public |= ep.public;
                if first.tags.0.is_empty() {
                    first.tags = ep.tags;
                }
                if first.groups.is_empty() {
                    first.groups = ep.groups;
                }
            }
            None => {
                seen.insert(ep.id.clone(), kept.len());
                kept.push(ep);
            }
        }
    }
    inventory.endpoints = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_file_and_path() {
        let text = r#"{"SecurityGroups":[{"GroupId":"sg-1","IpPermissions":[{"IpProtocol":"tcp","IpRanges":[{"CidrIp":"10.0.0.300/8"}]}]}]}"#;
        let err = import_json("sg.json", text).err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("sg.json"), "{err}");
        assert!(
            err.contains("SecurityGroups[0].IpPermissions[0].IpRanges[0].CidrIp"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let text = r#"{"Vpcs":[{"VpcId":"vpc-1","CidrBlock":"10.0.0.0/16","Shiny":true}],"NextToken":null}"#;
        let inv = import_json("vpcs.json", text);
        assert_eq!(inv.map(|i| i.vpcs.len()).ok(), Some(1));
    }

    #[test]
    fn a_json_file_without_known_keys_is_a_warning() {
        let inv = import_json("x.json", r#"{"Hello":1}"#).ok();
        assert_eq!(inv.map(|i| (i.is_empty(), i.notes.len())), Some((true, 1)));
    }

    #[test]
    fn an_empty_directory_is_an_error_not_a_pass() {
        let dir = tempfile::tempdir().ok();
        let result = dir.as_ref().map(|d| load_inventory(d.path()));
        assert!(matches!(result, Some(Err(LoadError::Empty { .. }))));
    }
}
