//! The one message catalogue (issue #15 item 3): every reason a record or a batch row is refused
//! for, in English and in Chinese. English is what the API says by default, and what logs and
//! tests read; Chinese is what the console and the batch reports say, and what the API says to a
//! client that asks for it with `Accept-Language: zh`. Code that refuses something names a
//! [`Reason`]; only this file words it.

use crate::identifiers::IdError;

/// The language a message is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The language of an `Accept-Language` header: Chinese when a `zh` tag is preferred to every
    /// English one (by their q-values), English when an `en` tag is, `default` otherwise.
    pub fn negotiate(header: Option<&str>, default: Lang) -> Lang {
        let Some(header) = header else {
            return default;
        };
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("zh") => Lang::Zh,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(default, |(_, lang)| lang)
    }
}

/// How a licence came in, as a refusal of an expired validity names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    Issued,
    Converted,
    Amended,
    Renewed,
}

/// A rule between two fields that does not hold: `label value` must be `relation`
/// `other_label (fields.other_key) other`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenRule {
    pub label: String,
    pub value: String,
    pub relation_en: String,
    pub relation_zh: String,
    pub other_label: String,
    pub other_key: String,
    pub other: String,
}

/// Why a value (a field, a cell, a row) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Empty,
    TooLong {
        len: usize,
        max: usize,
    },
    ControlCharacter(char),
    NotText(String),
    NotWholeNumber(String),
    NotOneOf {
        text: String,
        values: Vec<String>,
    },
    NotADate(String),
    /// A required field of the type, by its label.
    Required {
        label: String,
    },
    NoSuchField {
        type_name: String,
        key: String,
    },
    UntilBeforeFrom {
        until: String,
        from: String,
    },
    AlreadyExpired {
        until: String,
        act: Act,
    },
    /// A stock licence without the number printed on its original.
    StockNumberMissing,
    /// A stock licence without the date its original took effect.
    StockStartMissing,
    /// A rule between two fields does not hold.
    Rule(Box<BrokenRule>),
    /// A holder id of the wrong kind or badly written, for a type held by a person.
    PersonHolder(IdError),
    /// … for a type held by an organisation.
    OrganisationHolder(IdError),
    Identifier(IdError),
    /// Characters the licence font has no glyph for (the PDF could not print them).
    Unprintable(Vec<char>),
    /// A manifest row with a different number of cells from its header.
    CellCount {
        row: usize,
        header: usize,
    },
    /// A manifest column that is no field of the row's licence type.
    NotAFieldOf {
        type_name: String,
    },
    /// The same type and number twice in one batch.
    RepeatedInBatch {
        number: String,
        first_line: u64,
    },
    /// A drafted row (`elicence draft`) whose `needs_review` cell still lists doubts.
    DraftNeedsReview(String),
    /// A refusal by the service (a type of another department, a type not in the directory):
    /// its own words in English, the catalogue's sentence for its code in Chinese.
    Refused {
        code: &'static str,
        detail: String,
    },
    /// The scan a manifest row names, and what is wrong with it.
    Scan {
        name: String,
        problem: ScanProblem,
    },
    /// A manifest that cannot be read at all (the file system's or the CSV reader's words).
    FileUnreadable(String),
    /// The manifest's header row cannot be read, for this reason.
    HeaderUnreadable(Box<Reason>),
    EmptyManifest,
    ColumnTwice(String),
    ColumnMissing {
        column: String,
        required: String,
    },
    ColumnUnknown(String),
    /// A manifest row longer than the limit (`over_lines`: a quoted cell carries it on).
    RowTooLong {
        over_lines: bool,
        limit: u64,
    },
    TooManyRows {
        rows: u64,
        limit: u64,
    },
    /// An all-or-nothing batch with rejected rows: nothing was issued.
    NothingIssued {
        rejected: u64,
        rows: u64,
    },
    /// A conversion whose process stopped before the end.
    Interrupted,
}

/// What is wrong with a scan a manifest row names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanProblem {
    /// The `scan` cell is empty.
    Missing,
    /// A `..` in its path.
    ClimbsOut,
    Absolute,
    NotInBatch,
    Link,
    /// Through a linked folder, out of the batch.
    LeadsOut,
    NotAFile,
    TooLarge {
        bytes: Option<u64>,
        max: u64,
    },
    Unreadable(String),
    NotAnImage,
}

impl Reason {
    /// The reason's stable code, as the supervision figures count rejected rows by (SPEC §15):
    /// what was wrong, without the values that made it so.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLong { .. } => "too_long",
            Reason::ControlCharacter(_) => "control_character",
            Reason::NotText(_) => "not_text",
            Reason::NotWholeNumber(_) => "not_whole_number",
            Reason::NotOneOf { .. } => "not_one_of",
            Reason::NotADate(_) => "not_a_date",
            Reason::Required { .. } => "required",
            Reason::NoSuchField { .. } => "no_such_field",
            Reason::UntilBeforeFrom { .. } => "until_before_from",
            Reason::AlreadyExpired { .. } => "already_expired",
            Reason::StockNumberMissing => "stock_number_missing",
            Reason::StockStartMissing => "stock_start_missing",
            Reason::Rule(_) => "rule",
            Reason::PersonHolder(_) | Reason::OrganisationHolder(_) => "holder_id",
            Reason::Identifier(_) => "identifier",
            Reason::Unprintable(_) => "unprintable",
            Reason::CellCount { .. } => "cell_count",
            Reason::NotAFieldOf { .. } => "not_a_field",
            Reason::RepeatedInBatch { .. } => "repeated_in_batch",
            Reason::DraftNeedsReview(_) => "draft_needs_review",
            Reason::Refused { code, .. } => code,
            Reason::Scan { problem, .. } => problem.code(),
            Reason::FileUnreadable(_) => "file_unreadable",
            Reason::HeaderUnreadable(_) => "header_unreadable",
            Reason::EmptyManifest => "empty_manifest",
            Reason::ColumnTwice(_) => "column_twice",
            Reason::ColumnMissing { .. } => "column_missing",
            Reason::ColumnUnknown(_) => "column_unknown",
            Reason::RowTooLong { .. } => "row_too_long",
            Reason::TooManyRows { .. } => "too_many_rows",
            Reason::NothingIssued { .. } => "nothing_issued",
            Reason::Interrupted => "interrupted",
        }
    }

    pub fn say(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.en(),
            Lang::Zh => self.zh(),
        }
    }

    pub fn en(&self) -> String {
        match self {
            Reason::Empty => "is empty".into(),
            Reason::TooLong { len, max } => {
                format!("is {len} characters long; at most {max} allowed")
            }
            Reason::ControlCharacter(c) => format!("contains the control character {c:?}"),
            Reason::NotText(got) => format!("expected text, got {got}"),
            Reason::NotWholeNumber(text) => format!("{text:?} is not a whole number"),
            Reason::NotOneOf { text, values } => {
                format!("{text:?} is not one of {}", values.join(", "))
            }
            Reason::NotADate(text) => format!("{text:?} is not a date written YYYY-MM-DD"),
            Reason::Required { label } => format!("{label} is required"),
            Reason::NoSuchField { type_name, key } => format!("{type_name} has no field {key:?}"),
            Reason::UntilBeforeFrom { until, from } => {
                format!("{until} is before valid_from {from}")
            }
            Reason::AlreadyExpired { until, act } => {
                let verb = match act {
                    Act::Issued => "issued",
                    Act::Converted => "converted",
                    Act::Amended => "amended",
                    Act::Renewed => "renewed",
                };
                format!("{until} has passed: an already expired licence is not {verb}")
            }
            Reason::StockNumberMissing => {
                "is empty: a stock licence keeps the number printed on its paper original".into()
            }
            Reason::StockStartMissing => {
                "is empty: the date the paper licence took effect is needed".into()
            }
            Reason::Rule(r) => format!(
                "{} {} must be {} {} (fields.{}) {}",
                r.label, r.value, r.relation_en, r.other_label, r.other_key, r.other
            ),
            Reason::PersonHolder(e) => format!("this licence is held by a person: {e}"),
            Reason::OrganisationHolder(e) => {
                format!("this licence is held by an organisation: {e}")
            }
            Reason::Identifier(e) => e.to_string(),
            Reason::CellCount { row, header } => {
                format!("the row has {row} cells, the header {header}")
            }
            Reason::NotAFieldOf { type_name } => {
                format!("is not a field of {type_name}; leave it empty")
            }
            Reason::RepeatedInBatch { number, first_line } => {
                format!("{number} appears at line {first_line} already")
            }
            Reason::DraftNeedsReview(doubts) => format!(
                "the draft marked this row for review ({doubts}): check the cells, then empty \
                 needs_review"
            ),
            Reason::Refused { detail, .. } => detail.clone(),
            Reason::Scan { name, problem } => scan_en(name, problem),
            Reason::FileUnreadable(detail) => detail.clone(),
            Reason::HeaderUnreadable(why) => format!("the header row cannot be read: {why}"),
            Reason::EmptyManifest => "the file is empty: it has no header row".into(),
            Reason::ColumnTwice(column) => format!("column {column:?} appears twice"),
            Reason::ColumnMissing { column, required } => {
                format!("column {column:?} is missing (the header must name {required})")
            }
            Reason::ColumnUnknown(column) => {
                format!("column {column:?} is not a field of any licence type in the directory")
            }
            Reason::RowTooLong {
                over_lines: true,
                limit,
            } => format!(
                "the row starting there runs over several lines (a quoted cell) and is longer \
                 than the limit of {limit} bytes"
            ),
            Reason::RowTooLong {
                over_lines: false,
                limit,
            } => format!("is longer than the limit of {limit} bytes"),
            Reason::TooManyRows { rows, limit } => {
                format!("{rows} rows, over the limit of {limit}")
            }
            Reason::NothingIssued { rejected, rows } => format!(
                "{rejected} of {rows} rows rejected, so nothing was issued (--all-or-nothing)"
            ),
            Reason::Interrupted => "interrupted: the process running it stopped before the end \
                (killed or crashed); the rows it committed stay, convert the batch again to go on"
                .into(),
            Reason::Unprintable(chars) => format!(
                "the licence font cannot print {}",
                chars
                    .iter()
                    .map(|c| format!("{c:?} (U+{:04X})", u32::from(*c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub fn zh(&self) -> String {
        match self {
            Reason::Empty => "未填写".into(),
            Reason::TooLong { len, max } => format!("共 {len} 个字，最多 {max} 个字"),
            Reason::ControlCharacter(_) => "含有换行、制表符等控制字符，请删除".into(),
            Reason::NotText(got) => format!("应为文字，实为 {got}"),
            Reason::NotWholeNumber(text) => format!("“{text}”不是整数"),
            Reason::NotOneOf { text, values } => {
                format!("“{text}”不是可选值之一（可选：{}）", values.join("、"))
            }
            Reason::NotADate(text) => {
                format!("“{text}”不是日期，请按 年-月-日 填写，例如 2026-01-31")
            }
            Reason::Required { label } => format!("{label}为必填项"),
            Reason::NoSuchField { type_name, key } => format!("{type_name}没有“{key}”这一项"),
            Reason::UntilBeforeFrom { until, from } => {
                format!("有效期至 {until} 早于有效期自 {from}")
            }
            Reason::AlreadyExpired { until, act } => {
                let verb = match act {
                    Act::Issued => "签发",
                    Act::Converted => "转换",
                    Act::Amended => "变更",
                    Act::Renewed => "延续",
                };
                format!("有效期至 {until} 已过，已过期的证照不能{verb}")
            }
            Reason::StockNumberMissing => "未填写：存量证照须沿用纸质证照上的编号".into(),
            Reason::StockStartMissing => "未填写：须填写纸质证照的生效日期".into(),
            Reason::Rule(r) => format!(
                "{}（{}）须{}{}（{}）",
                r.label, r.value, r.relation_zh, r.other_label, r.other
            ),
            Reason::PersonHolder(e) => {
                format!("本证照的持证人是个人，应填居民身份证号码：{}", id_zh(e))
            }
            Reason::OrganisationHolder(e) => {
                format!("本证照的持证人是单位，应填统一社会信用代码：{}", id_zh(e))
            }
            Reason::Identifier(e) => id_zh(e),
            Reason::CellCount { row, header } => {
                format!("这一行有 {row} 个单元格，表头有 {header} 列，请核对是否多了或少了逗号")
            }
            Reason::NotAFieldOf { type_name } => format!("不是{type_name}的登记项，请留空"),
            Reason::RepeatedInBatch { number, first_line } => {
                format!("证照编号 {number} 与第 {first_line} 行重复")
            }
            Reason::DraftNeedsReview(doubts) => {
                format!("识别草稿标记本行待核对（{doubts}）：核对后清空 needs_review 列")
            }
            Reason::Refused { code, .. } => error_zh(code).to_string(),
            Reason::Scan { name, problem } => scan_zh(name, problem),
            Reason::FileUnreadable(_) => "文件无法读取，请确认它是表格软件另存的 CSV 文件".into(),
            Reason::HeaderUnreadable(why) => format!("表头行无法读取：{}", why.zh()),
            Reason::EmptyManifest => "文件是空的：没有表头行".into(),
            Reason::ColumnTwice(column) => format!("表头中“{column}”列出现了两次"),
            Reason::ColumnMissing { column, required } => {
                format!("表头缺少“{column}”列（表头须包含 {required}）")
            }
            Reason::ColumnUnknown(column) => {
                format!("表头中的“{column}”列不是证照目录中任何证照类型的登记项")
            }
            Reason::RowTooLong {
                over_lines: true,
                limit,
            } => format!("从这一行开始的带引号单元格跨了多行，超过了 {limit} 字节的长度限制"),
            Reason::RowTooLong {
                over_lines: false,
                limit,
            } => format!("这一行超过了 {limit} 字节的长度限制"),
            Reason::TooManyRows { rows, limit } => {
                format!("清单有 {rows} 行，超过了 {limit} 行的限制，请分批上传")
            }
            Reason::NothingIssued { rejected, rows } => {
                format!("{rows} 行中有 {rejected} 行被拒绝，按“全部成功才签发”的要求一张也没有签发")
            }
            Reason::Interrupted => {
                "转换中途停止（进程被终止或崩溃）；已签发的行保留，重新转换这一批即可从中断处继续"
                    .into()
            }
            Reason::Unprintable(chars) => format!(
                "证照字库无法打印 {}，请改用通用汉字",
                chars
                    .iter()
                    .map(|c| format!("“{c}”（U+{:04X}）", u32::from(*c)))
                    .collect::<Vec<_>>()
                    .join("、")
            ),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.en())
    }
}

impl ScanProblem {
    fn code(&self) -> &'static str {
        match self {
            ScanProblem::Missing => "scan_missing",
            ScanProblem::ClimbsOut
            | ScanProblem::Absolute
            | ScanProblem::Link
            | ScanProblem::LeadsOut => "scan_path",
            ScanProblem::NotInBatch => "scan_not_in_batch",
            ScanProblem::NotAFile => "scan_not_a_file",
            ScanProblem::TooLarge { .. } => "scan_too_large",
            ScanProblem::Unreadable(_) => "scan_unreadable",
            ScanProblem::NotAnImage => "scan_not_an_image",
        }
    }
}

fn scan_en(name: &str, problem: &ScanProblem) -> String {
    match problem {
        ScanProblem::Missing => {
            "is empty: every stock licence needs the scan of its paper original".into()
        }
        ScanProblem::ClimbsOut => format!("{name:?} climbs out of the batch with \"..\""),
        ScanProblem::Absolute => {
            format!("{name:?} is an absolute path; scans are named relative to the batch")
        }
        ScanProblem::NotInBatch => format!("{name:?} is not in the batch"),
        ScanProblem::Link => format!("{name:?} is a link; scans must be files in the batch"),
        ScanProblem::LeadsOut => format!("{name:?} leads out of the batch"),
        ScanProblem::NotAFile => format!("{name:?} is not a file"),
        ScanProblem::TooLarge {
            bytes: Some(bytes),
            max,
        } => format!("{name:?} is {bytes} bytes, over the limit of {max} bytes"),
        ScanProblem::TooLarge { bytes: None, max } => {
            format!("{name:?} is over the limit of {max} bytes")
        }
        ScanProblem::Unreadable(why) => format!("{name:?} cannot be read: {why}"),
        ScanProblem::NotAnImage => {
            format!("{name:?} is not a JPEG, PNG, TIFF or PDF file (judged by its content)")
        }
    }
}

fn scan_zh(name: &str, problem: &ScanProblem) -> String {
    match problem {
        ScanProblem::Missing => "未填写：每个存量证照都须附纸质证照的扫描件".into(),
        ScanProblem::ClimbsOut | ScanProblem::LeadsOut => {
            format!("扫描件“{name}”指向上传文件之外，请只填文件名或批次内的路径")
        }
        ScanProblem::Absolute => format!("扫描件“{name}”是绝对路径，请填批次内的相对路径"),
        ScanProblem::NotInBatch => format!("上传的文件中没有扫描件“{name}”"),
        ScanProblem::Link => format!("扫描件“{name}”是链接，须是批次内的文件"),
        ScanProblem::NotAFile => format!("“{name}”不是文件"),
        ScanProblem::TooLarge { max, .. } => {
            format!(
                "扫描件“{name}”超过了 {} MB 的大小限制",
                max.div_ceil(1 << 20)
            )
        }
        ScanProblem::Unreadable(_) => format!("扫描件“{name}”无法读取"),
        ScanProblem::NotAnImage => {
            format!("扫描件“{name}”不是 JPEG、PNG、TIFF 或 PDF 文件（按内容判断）")
        }
    }
}

/// A reason as it is kept with a batch row: said in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Said {
    pub en: String,
    pub zh: String,
}

impl From<&Reason> for Said {
    fn from(reason: &Reason) -> Said {
        Said {
            en: reason.en(),
            zh: reason.zh(),
        }
    }
}

impl From<Reason> for Said {
    fn from(reason: Reason) -> Said {
        Said::from(&reason)
    }
}

/// What an error code (SPEC §10) means, in a sentence a clerk understands.
pub fn error_zh(code: &str) -> &'static str {
    match code {
        "invalid_record" => "填写的内容有误，请按提示逐项更正。",
        "malformed_identifier" => "编号格式不正确。",
        "not_found" => "没有找到，或您无权查看。",
        "unknown_type" => "证照目录中没有这个证照类型。",
        "duplicate" => "同一编号的证照已经存在。",
        "invalid_state" => "证照当前的状态不允许这项操作。",
        "forbidden" => "您无权进行这项操作。",
        "bad_input" | "bad_request" => "填写的内容有误。",
        "too_large" => "上传的文件超过了大小限制。",
        "conflict" => "证照刚被他人修改，请刷新后重试。",
        "store_full" => "存储空间已满，暂时不能写入，请联系管理员。",
        "signer_revoked" => "签章密钥已被吊销，请重试。",
        "unauthenticated" => "请先登录，或令牌无效、已吊销。",
        "rate_limited" => "核验过于频繁，请稍后再试。",
        "no_route" => "没有这个地址。",
        _ => "系统出现错误，请稍后重试或联系管理员。",
    }
}

/// What an identifier is, in Chinese.
fn what_zh(what: &str) -> &str {
    match what {
        "resident ID" => "居民身份证号码",
        "unified social credit code" => "统一社会信用代码",
        "licence type code" => "证照类型代码",
        other => other,
    }
}

/// An identifier's refusal in Chinese; positions count from 1, as a clerk counts characters.
pub fn id_zh(e: &IdError) -> String {
    match e {
        IdError::Length {
            what,
            expected,
            got,
        } => format!("{}应为 {expected} 位，实为 {got} 位", what_zh(what)),
        IdError::Character {
            what,
            position,
            found,
        } => format!("{}第 {position} 位“{found}”不是允许的字符", what_zh(what)),
        IdError::Check {
            what,
            expected,
            found,
        } => format!(
            "{}校验位是“{found}”，应为“{expected}”（可能录入有误）",
            what_zh(what)
        ),
        IdError::BirthDate(date) => format!("居民身份证号码中的出生日期 {date} 不是真实日期"),
        IdError::FutureBirthDate(date) => {
            format!("居民身份证号码中的出生日期 {date} 晚于今天")
        }
        IdError::Shape(detail) => format!("证照标识格式不正确：{detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_preferred_of_chinese_and_english() {
        assert_eq!(Lang::negotiate(None, Lang::En), Lang::En);
        assert_eq!(
            Lang::negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8"), Lang::En),
            Lang::Zh
        );
        assert_eq!(
            Lang::negotiate(Some("en-US,en;q=0.9,zh;q=0.5"), Lang::Zh),
            Lang::En
        );
        assert_eq!(Lang::negotiate(Some("fr, de;q=0.5"), Lang::Zh), Lang::Zh);
        assert_eq!(Lang::negotiate(Some("zh;q=0, en"), Lang::Zh), Lang::En);
        assert_eq!(Lang::negotiate(Some(";;;q=x,,"), Lang::En), Lang::En);
    }

    #[test]
    fn every_reason_is_worded_in_both_languages() {
        let reasons = [
            Reason::Empty,
            Reason::TooLong { len: 60, max: 50 },
            Reason::NotADate("2026/1/1".into()),
            Reason::Required {
                label: "住所".into(),
            },
            Reason::Identifier(IdError::Check {
                what: "unified social credit code",
                expected: 'Y',
                found: 'X',
            }),
        ];
        for reason in reasons {
            let (en, zh) = (reason.en(), reason.zh());
            assert!(en.is_ascii() || en.contains("住所"), "{en}");
            assert!(
                zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
                "{zh}"
            );
        }
        assert_eq!(
            Reason::Identifier(IdError::Length {
                what: "resident ID",
                expected: 18,
                got: 17
            })
            .zh(),
            "居民身份证号码应为 18 位，实为 17 位"
        );
    }
}
