//! From recognised lines to the values of a licence: which type the page is (its title), and
//! which value each printed label introduces. Labels come from the directory and the renderer's
//! holder labels, so a paper licence printed from the same directory is read by the same words.

use std::collections::BTreeMap;

use super::ocr::{Line, ReadChar};
use crate::directory::{Directory, LicenceType};

/// The column a printed label introduces: a manifest column, or the validity line (both dates).
pub const VALIDITY: &str = "validity";

/// A value as read: its characters, each with the confidence of the word it was read in.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadValue {
    pub chars: Vec<ReadChar>,
}

impl ReadValue {
    fn of(chars: &[ReadChar]) -> ReadValue {
        let blank = |r: &ReadChar| r.c.is_whitespace();
        let start = chars.iter().position(|r| !blank(r)).unwrap_or(chars.len());
        let end = chars
            .iter()
            .rposition(|r| !blank(r))
            .map_or(start, |i| i + 1);
        ReadValue {
            chars: chars[start..end].to_vec(),
        }
    }

    fn extend(&mut self, more: ReadValue) {
        self.chars.extend(more.chars);
    }

    pub fn text(&self) -> String {
        self.chars.iter().map(|r| r.c).collect()
    }

    /// The lowest confidence of its letters, digits and Chinese characters: a word that is only
    /// a colon or a comma read unsurely says nothing of the value (punctuation is normalised).
    pub fn confidence(&self) -> f32 {
        let of = |keep: &dyn Fn(char) -> bool| {
            self.chars
                .iter()
                .filter(|r| keep(r.c))
                .map(|r| r.confidence)
                .reduce(f32::min)
        };
        of(&|c| c.is_alphanumeric())
            .or_else(|| of(&|c| !c.is_whitespace()))
            .unwrap_or(0.0)
    }

    /// The characters from `start` to `end` (by character), trimmed.
    pub fn part(&self, start: usize, end: usize) -> ReadValue {
        let end = end.min(self.chars.len());
        ReadValue::of(&self.chars[start.min(end)..end])
    }
}

/// What a page turned out to be.
#[derive(Debug)]
pub enum PageKind<'a> {
    /// A licence of this type (its title was found).
    Licence(&'a LicenceType),
    /// A licence of a type in the directory, but not the one being drafted.
    OtherType(&'a LicenceType),
    /// No licence title: a blank page, or something else.
    Unrecognised,
}

/// The printed labels of a type and the columns they fill, in the order a licence prints them.
pub fn labels(t: &LicenceType) -> Vec<(String, String)> {
    let (holder, holder_id) = t.holder_kind.labels_zh();
    let mut labels = vec![
        ("number".to_string(), "编号".to_string()),
        ("holder_name".to_string(), holder.to_string()),
        ("holder_id".to_string(), holder_id.to_string()),
    ];
    labels.extend(
        t.fields
            .iter()
            .filter(|f| f.printed)
            .map(|f| (f.key.clone(), f.label.clone())),
    );
    labels.push((VALIDITY.to_string(), "有效期".to_string()));
    labels
}

/// The type whose name the page's title shows (best match of any line, allowing a misread
/// character in four).
pub fn identify<'a>(lines: &[Line], directory: &'a Directory) -> Option<&'a LicenceType> {
    let mut best: Option<(&LicenceType, usize)> = None;
    for t in directory.types() {
        let name: Vec<char> = t.name.chars().collect();
        for line in lines {
            let text: Vec<char> = line.text().chars().filter(|c| !c.is_whitespace()).collect();
            let distance = distance_within(&name, &text);
            if distance <= name.len() / 4 && best.is_none_or(|(_, d)| distance < d) {
                best = Some((t, distance));
            }
        }
    }
    best.map(|(t, _)| t)
}

/// What page `lines` is, for drafting licences of type `wanted`.
pub fn page_kind<'a>(
    lines: &[Line],
    directory: &'a Directory,
    wanted: &LicenceType,
) -> PageKind<'a> {
    match identify(lines, directory) {
        Some(t) if t.code == wanted.code => PageKind::Licence(t),
        Some(t) => PageKind::OtherType(t),
        None => PageKind::Unrecognised,
    }
}

/// The values of the labelled lines of a page. A line that continues a text value (a wrapped
/// one) has no label and nothing like one, comes next in the page's usual line spacing, and
/// starts under the value rather than under the labels.
pub fn values(t: &LicenceType, lines: &[Line]) -> BTreeMap<String, ReadValue> {
    let labels = labels(t);
    let pitch = usual_pitch(lines);
    let mut values: BTreeMap<String, ReadValue> = BTreeMap::new();
    let mut open: Option<(String, u32, u32)> = None; // the value a line may continue: column, top, labels' left
    for line in lines {
        if let Some((column, value)) = labelled(&labels, &line.chars) {
            let wraps = column == "holder_name"
                || t.field(&column)
                    .is_some_and(|f| f.field_type == crate::directory::FieldType::Text);
            open = wraps.then(|| (column.clone(), line.top, line.left));
            values.entry(column).or_insert(value);
            continue;
        }
        let continues = open.as_ref().is_some_and(|(_, top, labels_left)| {
            line.top <= top.saturating_add(pitch.saturating_mul(6) / 5)
                && line.left > labels_left.saturating_add(line.height)
                && !looks_labelled(&line.chars)
        });
        open = match open.take() {
            Some((column, _, labels_left)) if continues => {
                if let Some(value) = values.get_mut(&column) {
                    value.extend(ReadValue::of(&line.chars));
                }
                Some((column, line.top, labels_left))
            }
            _ => None,
        };
    }
    values
}

/// The median distance from one line's top to the next's.
fn usual_pitch(lines: &[Line]) -> u32 {
    let mut steps: Vec<u32> = lines
        .windows(2)
        .map(|pair| pair[1].top.saturating_sub(pair[0].top))
        .filter(|&step| step > 0)
        .collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).copied().unwrap_or(u32::MAX / 2)
}

/// The column and value of a line that starts with one of `labels` (a misread character in
/// four allowed; a tie between two labels is no match), the value being what follows the label
/// and its colon.
fn labelled(labels: &[(String, String)], chars: &[ReadChar]) -> Option<(String, ReadValue)> {
    let text: Vec<char> = chars.iter().map(|r| r.c).collect();
    // The closest label wins; of two as close, the longer (施工单位项目负责人 over 施工单位).
    let mut best: Option<(&str, usize, usize, usize)> = None; // column, distance, length, end
    let mut tie = false;
    for (column, label) in labels {
        let label: Vec<char> = label.chars().collect();
        let (distance, end) = prefix_distance(&label, &text);
        // A misread character in four; in a short label, one, if its colon follows.
        let colon_follows = text[end..].iter().take(2).any(|c| COLONS.contains(*c));
        let allowed = if colon_follows {
            (label.len() / 4).max(1)
        } else {
            label.len() / 4
        };
        if distance > allowed {
            continue;
        }
        let better = |d: usize, len: usize| {
            (distance, std::cmp::Reverse(label.len())) < (d, std::cmp::Reverse(len))
        };
        match best {
            Some((_, d, len, _)) if distance == d && label.len() == len => tie = true,
            Some((_, d, len, _)) if !better(d, len) => {}
            _ => {
                best = Some((column, distance, label.len(), end));
                tie = false;
            }
        }
    }
    let (column, _, _, end) = best.filter(|_| !tie)?;
    // The value starts after the colon, if one follows within three characters (a misread
    // label's last character may come before it), and after any stray mark before the value.
    let after_colon = text[end..]
        .iter()
        .take(3)
        .position(|c| COLONS.contains(*c))
        .map_or(end, |at| end + at + 1);
    let value_starts = after_colon
        + text[after_colon..]
            .iter()
            .take_while(|c| c.is_whitespace() || LEADING_MARKS.contains(**c))
            .count();
    Some((column.to_string(), ReadValue::of(&chars[value_starts..])))
}

/// What OCR reads a label's colon as.
const COLONS: &str = ":：;；";

/// Marks no value starts with: a colon or stop read twice, a stray quote, dash or bar.
const LEADING_MARKS: &str = ":：;；,，.。·、“”\"'‘’`-—_|";

/// Whether a line reads like `label：value` (a colon within its first ten characters): a field
/// whose label was misread, never the continuation of the value above.
fn looks_labelled(chars: &[ReadChar]) -> bool {
    chars.iter().take(10).any(|r| COLONS.contains(r.c))
}

/// The least edit distance between `label` and some prefix of `text`, and that prefix's length
/// (the shortest of equally close ones: a value's first character is never taken for the label's).
fn prefix_distance(label: &[char], text: &[char]) -> (usize, usize) {
    let row = edit_row(label, text, false);
    row.iter()
        .enumerate()
        .map(|(end, &d)| (d, end))
        .min()
        .unwrap_or((label.len(), 0))
}

/// The least edit distance between `pattern` and any substring of `text`.
fn distance_within(pattern: &[char], text: &[char]) -> usize {
    edit_row(pattern, text, true)
        .into_iter()
        .min()
        .unwrap_or(pattern.len())
}

/// The last row of the edit-distance table of `pattern` against `text`: entry j is the distance
/// between the whole pattern and text ending at j, starting at 0 (or anywhere, if `free_start`).
fn edit_row(pattern: &[char], text: &[char], free_start: bool) -> Vec<usize> {
    let mut previous: Vec<usize> = (0..=text.len())
        .map(|j| if free_start { 0 } else { j })
        .collect();
    for (i, &p) in pattern.iter().enumerate() {
        let mut row = vec![i + 1; text.len() + 1];
        for (j, &t) in text.iter().enumerate() {
            let substitute = previous[j] + usize::from(p != t);
            row[j + 1] = substitute.min(previous[j + 1] + 1).min(row[j] + 1);
        }
        previous = row;
    }
    previous
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, top: u32) -> Line {
        Line {
            chars: text
                .chars()
                .map(|c| ReadChar {
                    c,
                    confidence: if c == '传' { 40.0 } else { 95.0 },
                })
                .collect(),
            left: if text.starts_with('(') { 200 } else { 80 },
            top,
            height: 30,
        }
    }

    fn directory() -> Directory {
        Directory::load(std::path::Path::new("templates/directory")).unwrap()
    }

    fn food(directory: &Directory) -> &LicenceType {
        directory
            .types()
            .find(|t| t.name == "食品经营许可证")
            .unwrap()
    }

    #[test]
    fn labels_find_their_values_and_long_values_their_second_line() {
        let directory = directory();
        let food = food(&directory);
        let lines = [
            line("食品经营许可证", 40),
            line("编号:JY1S00030000002", 100),
            line("持证单位;城东陈传百货商店", 160),
            line("住所:浙江省示范县城关镇人民路88号", 220),
            line("经营场所:浙江省示范县城关镇人民路88号一楼", 280),
            line("经营项目:热食类食品制售;冷食类食品制售", 340),
            line("(不含生食)", 380),
            line("有效日期不在此行", 400),
            line("有效期:2026-06-20至2031-06-19", 500),
            line("示范县市场监督管理局", 560),
        ];
        assert!(matches!(
            page_kind(&lines, &directory, food),
            PageKind::Licence(_)
        ));
        let values = values(food, &lines);
        assert_eq!(values["number"].text(), "JY1S00030000002");
        assert_eq!(values["holder_name"].text(), "城东陈传百货商店");
        assert_eq!(values["holder_name"].confidence(), 40.0);
        assert_eq!(values["residence"].text(), "浙江省示范县城关镇人民路88号");
        assert_eq!(
            values["business_premises"].text(),
            "浙江省示范县城关镇人民路88号一楼"
        );
        assert_eq!(
            values["business_items"].text(),
            "热食类食品制售;冷食类食品制售(不含生食)"
        );
        assert_eq!(values[VALIDITY].text(), "2026-06-20至2031-06-19");
        // The issuer's name far below the validity continues nothing.
        assert_eq!(values.len(), 6);
    }

    #[test]
    fn another_type_or_a_page_without_a_title_is_told_apart() {
        let directory = directory();
        let food = food(&directory);
        let permit = [line("建筑工程施工许可证", 40), line("编号:X1", 100)];
        assert!(matches!(
            page_kind(&permit, &directory, food),
            PageKind::OtherType(t) if t.name == "建筑工程施工许可证"
        ));
        assert!(matches!(
            page_kind(&[], &directory, food),
            PageKind::Unrecognised
        ));
        // One misread character of the title still names the type.
        assert!(matches!(
            page_kind(&[line("食品经菅许可证", 40)], &directory, food),
            PageKind::Licence(_)
        ));
    }

    #[test]
    fn distances() {
        let chars = |s: &str| s.chars().collect::<Vec<char>>();
        assert_eq!(prefix_distance(&chars("住所"), &chars("住所:浙江")), (0, 2));
        assert_eq!(
            prefix_distance(&chars("住所"), &chars("经营场所:浙江")).0,
            2
        );
        assert_eq!(
            distance_within(&chars("许可证"), &chars("口食品经营许可证")),
            0
        );
        assert_eq!(distance_within(&chars("许可证"), &chars("")), 3);
    }
}
