//! What a licence prints, as label/value rows, and how a value breaks into lines no wider than
//! its column. A room of its own because line breaking is the one place the renderer's
//! generations differ in text (see `wrap`), and because it is pure: text in, lines out.

use crate::directory::LicenceType;
use crate::licence::HolderId;
use crate::signing::claims::FullRecord;
use crate::time_util;

use super::layout::Generation;
use super::{chinese_date, Renderer};

/// A row of the licence: a label and its value.
pub(super) struct Row {
    pub(super) label: String,
    pub(super) value: String,
}

/// The rows a licence prints: holder, id, the printed fields in directory order, validity.
pub(super) fn rows(licence_type: &LicenceType, full: &FullRecord) -> Vec<Row> {
    let record = &full.record;
    let (holder_label, id_label) = licence_type.holder_kind.labels_zh();
    let holder_id = match &record.holder.id {
        HolderId::Person(id) => id.to_string(),
        HolderId::Organisation(id) => id.to_string(),
    };
    let mut rows = vec![
        Row {
            label: holder_label.into(),
            value: record.holder.name.clone(),
        },
        Row {
            label: id_label.into(),
            value: holder_id,
        },
    ];
    for def in licence_type.fields.iter().filter(|f| f.printed) {
        if let Some(value) = record.fields.get(&def.key) {
            let value = match def.field_type {
                crate::directory::FieldType::Date => time_util::parse_date(&value.to_string())
                    .map_or_else(|| value.to_string(), chinese_date),
                _ => value.to_string(),
            };
            rows.push(Row {
                label: def.label.clone(),
                value,
            });
        }
    }
    let until = record
        .valid_until
        .map_or_else(|| "长期".to_string(), chinese_date);
    rows.push(Row {
        label: "有效期".into(),
        value: format!("{} 至 {}", chinese_date(record.valid_from), until),
    });
    rows
}

/// Pieces of text between which a line may break: each CJK character alone, runs of other
/// characters with their trailing space.
fn break_opportunities(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let cjk = u32::from(c) >= 0x2E80;
        if cjk || c == ' ' {
            if c == ' ' {
                word.push(c);
            }
            if !word.is_empty() {
                pieces.push(std::mem::take(&mut word));
            }
            if cjk {
                pieces.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        pieces.push(word);
    }
    pieces
}

impl Renderer {
    /// Breaks `text` into lines no wider than `max` mm: between any two CJK characters, at spaces
    /// otherwise, and inside a word only when the word alone is too wide. Renderer 1 left such a
    /// word uncut when nothing preceded it on its line, as at the start of the text (a long
    /// identifier ran past the border); its output stays as it was, renderer 2 cuts it.
    pub(super) fn wrap(
        &self,
        text: &str,
        size: f32,
        max: f32,
        generation: Generation,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for piece in break_opportunities(text) {
            let candidate = format!("{line}{piece}");
            let alone = line.is_empty();
            if alone || self.width(candidate.trim_end(), size) <= max {
                line = candidate;
                if !alone || !generation.cuts_a_long_first_word() {
                    continue;
                }
            } else {
                lines.push(line.trim_end().to_string());
                line = piece.trim_start().to_string();
            }
            self.cut_to_width(&mut line, &mut lines, size, max);
        }
        if !line.trim().is_empty() || lines.is_empty() {
            lines.push(line.trim_end().to_string());
        }
        lines
    }

    /// A single piece wider than the line (a long code): cut it character by character, moving
    /// each full head into `lines` and leaving the rest in `line`.
    fn cut_to_width(&self, line: &mut String, lines: &mut Vec<String>, size: f32, max: f32) {
        while self.width(line, size) > max && line.chars().count() > 1 {
            let mut head = String::new();
            for c in line.chars() {
                if self.width(&format!("{head}{c}"), size) > max {
                    break;
                }
                head.push(c);
            }
            let rest = line[head.len()..].to_string();
            lines.push(head);
            *line = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;

    use crate::render::templates_for_tests as templates;

    #[test]
    fn renderer_2_cuts_a_long_word_that_begins_the_text_and_renderer_1_keeps_it_whole() {
        let directory = Directory::load(&templates().join("directory")).unwrap();
        let renderer = Renderer::load(&templates(), &directory).unwrap();
        let identifier = "1.2.156.3005.2.13100000MB0000020K001.13330122MB0000003M.2430599.002.Q";
        let max = 54.0;
        let cut = renderer.wrap(identifier, 5.5, max, Generation::Subset2);
        assert!(cut.len() > 1, "{cut:?}");
        assert!(
            cut.iter().all(|line| renderer.width(line, 5.5) <= max),
            "{cut:?}"
        );
        assert_eq!(cut.concat(), identifier);
        assert_eq!(
            renderer.wrap(identifier, 5.5, max, Generation::Frozen1),
            [identifier]
        );
        // Both cut such a word when it follows a break.
        let after = format!("编号 {identifier}");
        assert_eq!(
            renderer.wrap(&after, 5.5, max, Generation::Frozen1),
            renderer.wrap(&after, 5.5, max, Generation::Subset2)
        );
    }

    #[test]
    fn cjk_characters_break_alone_and_other_words_keep_their_space() {
        assert_eq!(
            break_opportunities("编号 AB-1 cd"),
            ["编", "号", " ", "AB-1 ", "cd"]
        );
    }
}
