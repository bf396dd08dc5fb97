//! `directory list` and `directory show`: the licence directory (证照目录), its types and their
//! fields. A room of its own because it only reads what the templates define and the store
//! numbered; nothing here signs or changes anything.

use clap::Subcommand;

use super::{print, print_json};
use crate::app::{App, AppError};
use crate::directory::LicenceType;
use crate::licence::RecordInput;

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// The licence types with their codes and the directory version.
    List,
    /// One licence type with its fields.
    Show {
        /// The licence type code (21 characters).
        type_code: String,
        /// Print a valid sample record instead: the starting point for `issue --file`.
        #[arg(long)]
        example: bool,
    },
}

/// `directory …`: the directory version lives in the store, so even listing opens the
/// application (which records a changed directory file).
pub(super) fn run(app: &App, command: DirectoryCommand, json: bool) -> Result<i32, AppError> {
    match command {
        DirectoryCommand::List => {
            let listing = app.directory_listing();
            print(json, &listing, || {
                let mut lines = vec![format!("directory version {}", listing.directory_version)];
                lines.extend(listing.types.iter().copied().map(summary_line));
                lines.join("\n")
            });
        }
        DirectoryCommand::Show { type_code, example } => {
            let code = crate::identifiers::TypeCode::parse(&type_code)?;
            let licence_type = app.licence_type(&code)?;
            if example {
                // A record is JSON whether or not `--json` was given: it is a file to edit.
                print_json(&RecordInput::example_of(licence_type));
            } else {
                print(json, licence_type, || describe_type(licence_type));
            }
        }
    }
    Ok(0)
}

fn summary_line(t: &LicenceType) -> String {
    format!(
        "{}  {}  ({}, {}, {})",
        t.code,
        t.name,
        t.issuer.name,
        t.holder_kind.as_str(),
        t.default_validity
    )
}

fn describe_type(t: &LicenceType) -> String {
    let mut lines = vec![
        format!("{} {}", t.code, t.name),
        format!("issuer  {} ({})", t.issuer.name, t.issuer.uscc),
        format!(
            "holder  {}; default validity {}",
            t.holder_kind.as_str(),
            t.default_validity
        ),
    ];
    for f in &t.fields {
        lines.push(format!(
            "  {:<24} {:<14} {:?}{}{}{}",
            f.key,
            f.label,
            f.field_type,
            if f.required { " required" } else { "" },
            if f.public { " public" } else { " private" },
            if f.values.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.values.join("|"))
            }
        ));
    }
    for rule in &t.rules {
        let words = t
            .field(&rule.field)
            .map_or(rule.must_be.symbol(), |f| rule.must_be.words(f.field_type));
        lines.push(format!(
            "  rule: {} must be {words} {}",
            rule.field, rule.other
        ));
    }
    lines.join("\n")
}
