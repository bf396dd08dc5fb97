//! What OCR reads is not what was printed: `0` comes back as `O` or `D`, `1` as `I` or `l`. This
//! module turns a read value into one a licence accepts, and says how sure that is. An identifier
//! with a check character (resident ID, USCC) is corrected only when exactly one reading of it
//! passes the check; anything else is left as read and marked as needing review.

use time::Date;

use crate::identifiers::{ResidentId, Uscc};
use crate::time_util;

/// Characters OCR confuses with each other: issue #19's list (0/O/D, 1/I/l, 5/S, 8/B, 2/Z), with
/// Q and `|`, and the L a lowercase l becomes when an identifier is read in capitals.
const CONFUSIONS: [&str; 5] = ["0ODQ", "1IlL|", "5S", "8B", "2Z"];

/// Characters OCR may read in place of `c` (not counting `c` itself).
fn confusable_with(c: char) -> impl Iterator<Item = char> {
    CONFUSIONS
        .iter()
        .filter(move |group| group.contains(c))
        .flat_map(|group| group.chars())
        .filter(move |&other| other != c)
}

/// Full-width forms (ＡＢＣ１２３) as plain ASCII, spaces dropped: what every licence number,
/// identifier, date and whole number is read through.
pub fn plain(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            other => other,
        })
        .collect()
}

/// Text as a Chinese licence prints it: Tesseract gives ASCII punctuation (`;` `:` `(`) where
/// the paper has full-width forms (`；` `：` `（`); next to a Chinese character they are turned
/// back, as GB/T 15834 sets them. Spaces between Chinese characters are dropped.
pub fn text(read: &str) -> String {
    let chars: Vec<char> = read.trim().chars().collect();
    let chinese = |c: Option<&char>| c.is_some_and(|&c| u32::from(c) >= 0x2E80);
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let before = i.checked_sub(1).and_then(|j| chars.get(j));
        let after = chars.get(i + 1);
        let near_chinese = chinese(before) || chinese(after);
        let full = match c {
            // Tesseract's readings of full-width brackets (a licence has no book titles 《》).
            '〈' | '《' | '{' => Some('（'),
            '〉' | '》' | '}' => Some('）'),
            '(' | ')' | ';' | ':' | ',' | '?' | '!' if near_chinese => {
                char::from_u32(c as u32 + 0xFEE0)
            }
            ' ' if chinese(before) && chinese(after) => continue,
            _ => None,
        };
        let c = full.unwrap_or(c);
        // A bracket read twice (（（) is one bracket: a licence's text never doubles them.
        if "（）".contains(c) && out.ends_with(c) {
            continue;
        }
        out.push(c);
    }
    // A colon or comma at the end is the edge of the next word or a speck, never the value's.
    out.trim_end_matches(['：', '；', '，', '、', ':', ';', ','])
        .to_string()
}

/// How a read value was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// Valid as read.
    AsRead(String),
    /// Valid after replacing confusable characters. `proven` when only one reading could be
    /// valid (a check character, the type's list of values decided); a date or a number read
    /// through the confusions is merely plausible.
    Corrected {
        value: String,
        read: String,
        proven: bool,
    },
    /// No single valid reading: the value as read, and why it is in doubt.
    Doubtful { value: String, why: String },
}

impl Reading {
    pub fn value(&self) -> &str {
        match self {
            Reading::AsRead(v) => v,
            Reading::Corrected { value, .. } | Reading::Doubtful { value, .. } => value,
        }
    }
}

/// A resident ID as read: at most one confusable character corrected, and only when exactly one
/// correction passes the check (and gives a real birth date no later than `today`).
pub fn resident_id(read: &str, today: Date) -> Reading {
    let read = plain(read).to_uppercase();
    let allowed = |i: usize, c: char| c.is_ascii_digit() || (i == 17 && c == 'X');
    let valid = |s: &str| ResidentId::parse_on(s, today).is_ok();
    by_check("公民身份号码", &read, allowed, valid)
}

/// A unified social credit code as read, corrected the same way. Its 2nd character (the kind
/// of organisation) and 3rd to 8th (the region's code) are digits (GB 32100): a letter there is
/// a misread, even if the check character happens to pass.
pub fn uscc(read: &str) -> Reading {
    let read = plain(read).to_uppercase();
    let allowed = |i: usize, c: char| {
        if (1..8).contains(&i) {
            c.is_ascii_digit()
        } else {
            "0123456789ABCDEFGHJKLMNPQRTUWXY".contains(c)
        }
    };
    let valid = |s: &str| Uscc::parse(s).is_ok();
    by_check("统一社会信用代码", &read, allowed, valid)
}

/// Characters a position refuses are first replaced by the confusable characters it allows (an
/// `O` where only digits go can only be `0`; in a credit code it may be `0` or `D`); then, if no
/// such reading passes the check, every single confusable substitution is tried. The result
/// stands only if exactly one reading is valid.
fn by_check(
    what: &str,
    read: &str,
    allowed: impl Fn(usize, char) -> bool,
    valid: impl Fn(&str) -> bool,
) -> Reading {
    /// More forced readings than this and the value is too far gone to guess at.
    const MOST_READINGS: usize = 64;
    if read.chars().count() != 18 {
        return Reading::Doubtful {
            value: read.to_string(),
            why: format!("{what}识别出 {} 位，应为 18 位", read.chars().count()),
        };
    }
    let mut forced: Vec<Vec<char>> = vec![Vec::new()];
    for (i, c) in read.chars().enumerate() {
        let options: Vec<char> = if allowed(i, c) {
            vec![c]
        } else {
            confusable_with(c).filter(|&o| allowed(i, o)).collect()
        };
        if options.is_empty() || forced.len() * options.len() > MOST_READINGS {
            return Reading::Doubtful {
                value: read.to_string(),
                why: format!("{what}第 {} 位（{c}）无法辨认", i + 1),
            };
        }
        forced = forced
            .into_iter()
            .flat_map(|prefix| {
                options.iter().map(move |&o| {
                    let mut longer = prefix.clone();
                    longer.push(o);
                    longer
                })
            })
            .collect();
    }
    let as_text = |chars: &[char]| chars.iter().collect::<String>();
    let mut candidates: Vec<String> = forced
        .iter()
        .map(|chars| as_text(chars))
        .filter(|s| valid(s))
        .collect();
    // A free substitution that passes may be chance (one in 31 for a credit code) when the real
    // misread was no confusion at all: such a correction is only as sure as the reading was.
    let proven = !candidates.is_empty();
    if candidates.is_empty() {
        candidates = forced
            .iter()
            .flat_map(|chars| single_substitutions(chars, &allowed).collect::<Vec<_>>())
            .filter(|s| valid(s))
            .collect();
    }
    candidates.sort();
    candidates.dedup();
    match candidates.as_slice() {
        [only] if *only == read => Reading::AsRead(only.clone()),
        [only] => Reading::Corrected {
            value: only.clone(),
            read: read.to_string(),
            proven,
        },
        [] => Reading::Doubtful {
            value: read.to_string(),
            why: format!("{what}校验位不符，且不是单个易混字符认错所致"),
        },
        several => Reading::Doubtful {
            value: read.to_string(),
            why: format!(
                "{what}校验位不符，有 {} 种更正都能通过，无法确定",
                several.len()
            ),
        },
    }
}

/// Every string that differs from `chars` in one position by a confusable, allowed character.
fn single_substitutions<'a>(
    chars: &'a [char],
    allowed: &'a impl Fn(usize, char) -> bool,
) -> impl Iterator<Item = String> + 'a {
    (0..chars.len()).flat_map(move |i| {
        confusable_with(chars[i])
            .filter(move |&o| allowed(i, o))
            .map(move |o| {
                let mut changed = chars.to_vec();
                changed[i] = o;
                changed.into_iter().collect()
            })
    })
}

/// Digits as read: letters that can only be a digit become that digit (`O` → `0`, `l` → `1`).
/// Used for dates and whole numbers, where no letter belongs.
pub fn digits(read: &str) -> String {
    plain(read)
        .chars()
        .map(|c| {
            if c.is_ascii_digit() || c == '-' {
                return c;
            }
            let mut options = confusable_with(c).filter(char::is_ascii_digit);
            match (options.next(), options.next()) {
                (Some(only), None) => only,
                _ => c,
            }
        })
        .collect()
}

/// A date as read (`2024-03-05`, or `2024年3月5日` as paper licences print it).
pub fn date(read: &str) -> Reading {
    // What OCR makes of the dash between year, month and day; a stray mark after the date.
    let text: String = digits(read)
        .chars()
        .map(|c| {
            if "—–一_~./。".contains(c) {
                '-'
            } else {
                c
            }
        })
        .collect();
    let text = text
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string();
    let text = chinese_date(&text).unwrap_or(text);
    match time_util::parse_date(&text) {
        Some(d) if time_util::format_date(d) == plain(read) => Reading::AsRead(text),
        Some(d) => Reading::Corrected {
            value: time_util::format_date(d),
            read: read.to_string(),
            proven: false,
        },
        None => Reading::Doubtful {
            value: read.to_string(),
            why: format!("“{read}”不是有效日期"),
        },
    }
}

/// `2024年3月5日` as `2024-03-05`.
fn chinese_date(text: &str) -> Option<String> {
    let (year, rest) = text.split_once('年')?;
    let (month, rest) = rest.split_once('月')?;
    let day = rest.strip_suffix('日').unwrap_or(rest);
    let number = |s: &str| s.parse::<u32>().ok();
    Some(format!(
        "{:04}-{:02}-{:02}",
        number(year)?,
        number(month)?,
        number(day)?
    ))
}

/// A whole number as read.
pub fn integer(read: &str) -> Reading {
    let text = digits(read);
    match text.parse::<i64>() {
        Ok(n) if n.to_string() == plain(read) => Reading::AsRead(n.to_string()),
        Ok(n) => Reading::Corrected {
            value: n.to_string(),
            read: read.to_string(),
            proven: false,
        },
        Err(_) => Reading::Doubtful {
            value: read.to_string(),
            why: format!("“{read}”不是整数"),
        },
    }
}

/// One of the directory's `allowed` values: the value as read if it is one, else the only one
/// a single misread character away (a one-character value is never guessed).
pub fn one_of(read: &str, allowed: &[String]) -> Reading {
    let read = read.trim();
    if allowed.iter().any(|v| v == read) {
        return Reading::AsRead(read.to_string());
    }
    let near: Vec<&String> = allowed
        .iter()
        .filter(|v| v.chars().count() > 1 && one_substitution_apart(v, read))
        .collect();
    match near.as_slice() {
        [only] => Reading::Corrected {
            value: only.to_string(),
            read: read.to_string(),
            proven: true,
        },
        _ => Reading::Doubtful {
            value: read.to_string(),
            why: format!("“{read}”不在可选值（{}）中", allowed.join("、")),
        },
    }
}

fn one_substitution_apart(a: &str, b: &str) -> bool {
    a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).filter(|(x, y)| x != y).count() == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        time::macros::date!(2026 - 12 - 04)
    }

    #[test]
    fn a_valid_id_is_taken_as_read() {
        assert_eq!(
            resident_id("11010519491231002X", today()),
            Reading::AsRead("11010519491231002X".into())
        );
        assert_eq!(
            uscc("91350100M000100Y43"),
            Reading::AsRead("91350100M000100Y43".into())
        );
    }

    #[test]
    fn a_letter_where_only_digits_go_is_the_digit_it_looks_like() {
        // O in a digit position can only be 0; the check then proves it.
        let read = resident_id("11O10519491231002x", today());
        assert_eq!(read.value(), "11010519491231002X");
        assert!(matches!(read, Reading::Corrected { .. }));
        // S and I are not in the USCC charset: they can only be 5 and 1.
        assert_eq!(uscc("9I350100M000100Y43").value(), "91350100M000100Y43");
    }

    #[test]
    fn one_confusable_misread_is_corrected_only_when_the_check_singles_it_out() {
        // The USCC charset has both 8 and B: reading B for 8 fails the check, and 8 is the only
        // single confusable change that passes it.
        let good = "91350100M000100Y43";
        let misread = good.replacen('8', "B", 1);
        if misread != good {
            assert_eq!(uscc(&misread).value(), good);
        }
        // Every single confusable misread of a valid USCC is either corrected back or doubted,
        // never "corrected" to another code.
        let chars: Vec<char> = good.chars().collect();
        let allowed = |_: usize, c: char| "0123456789ABCDEFGHJKLMNPQRTUWXY".contains(c);
        for wrong in single_substitutions(&chars, &allowed) {
            match uscc(&wrong) {
                Reading::Corrected { value, .. } => assert_eq!(value, good, "from {wrong}"),
                Reading::Doubtful { .. } => {}
                Reading::AsRead(v) => panic!("{v} passed its check though misread"),
            }
        }
    }

    #[test]
    fn a_misread_that_is_no_confusion_is_doubted() {
        // 3 → 7 is not a usual confusion: no correction, the value kept as read.
        let read = resident_id("11010519491231702X", today());
        assert!(matches!(read, Reading::Doubtful { .. }), "{read:?}");
        assert_eq!(read.value(), "11010519491231702X");
        assert!(matches!(
            resident_id("1101051949123100", today()),
            Reading::Doubtful { .. }
        ));
        assert!(matches!(
            uscc("卫1350100M000100Y43"),
            Reading::Doubtful { .. }
        ));
        // Two misreads that happen to pass the check (1 → L, 7 → T): the L where the kind of
        // organisation goes gives them away.
        let passing = "9L320102YN4E525MTX";
        assert!(Uscc::parse(passing).is_ok());
        assert!(
            !matches!(uscc(passing), Reading::AsRead(_)),
            "{:?}",
            uscc(passing)
        );
    }

    #[test]
    fn punctuation_next_to_chinese_is_full_width_again() {
        assert_eq!(
            text("热食类食品制售;冷食类食品制售(不含生食);预包装食品〈含冷藏冷冻食品)销售"),
            "热食类食品制售；冷食类食品制售（不含生食）；预包装食品（含冷藏冷冻食品）销售"
        );
        assert_eq!(
            text("总建筑面积32560平方米,地上12层"),
            "总建筑面积32560平方米，地上12层"
        );
        assert_eq!(text("Room 5 (east)"), "Room 5 (east)");
        assert_eq!(text("李明、赵 敏"), "李明、赵敏");
        assert_eq!(text("张卫东："), "张卫东");
        assert_eq!(
            text("食品销售（（仅销售预包装食品）"),
            "食品销售（仅销售预包装食品）"
        );
    }

    #[test]
    fn dates_and_numbers_are_read_through_the_same_confusions() {
        assert_eq!(date("2024-O3-l5").value(), "2024-03-15");
        assert_eq!(date("2024年3月5日").value(), "2024-03-05");
        assert_eq!(date("2024-03-05"), Reading::AsRead("2024-03-05".into()));
        assert_eq!(date("2030-08-08，").value(), "2030-08-08");
        assert!(matches!(date("2023-02-30"), Reading::Doubtful { .. }));
        assert_eq!(integer("１8650").value(), "18650");
        assert!(matches!(integer("18六50"), Reading::Doubtful { .. }));
    }

    #[test]
    fn an_enumerated_value_is_corrected_only_to_the_one_value_a_character_away() {
        let allowed: Vec<String> = ["一级", "二级", "三级", "四级"].map(String::from).into();
        assert_eq!(one_of("三级", &allowed), Reading::AsRead("三级".into()));
        // "五级" is one character from all four: no guess.
        assert!(matches!(one_of("五级", &allowed), Reading::Doubtful { .. }));
        let formats: Vec<String> = ["食品销售经营者", "餐饮服务经营者", "单位食堂"]
            .map(String::from)
            .into();
        assert_eq!(one_of("餐饮服务经菅者", &formats).value(), "餐饮服务经营者");
        let sexes: Vec<String> = ["男", "女"].map(String::from).into();
        assert!(matches!(one_of("另", &sexes), Reading::Doubtful { .. }));
    }
}
