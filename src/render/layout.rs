//! The layout files (`templates/layouts/{name}.toml`): the page's measures, colours and type
//! sizes, and the renderer generation that draws it. A room of its own because it is the only
//! part of rendering read from disk: everything here is checked once at start-up, so drawing
//! never meets a bad colour or an unknown renderer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use printpdf::{Color, Rgb};
use serde::{Deserialize, Serialize};

use super::{frozen_v1, RenderError};

/// The renderer generation a layout names (`renderer = 1 | 2` in its file). A generation's
/// output never changes, so a layout keeps the number it was issued under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Generation {
    /// Renderer 1, frozen (`frozen_v1.rs`): printpdf subsets the font and draws the QR code.
    Frozen1,
    /// Renderer 2: the page's font subset and the QR form are written here.
    Subset2,
    /// Renderer 3: renderer 2's page, signed (PAdES B-B, `pades.rs`), the department's seal
    /// drawn as the signature's appearance instead of in the page.
    Signed3,
}

impl Generation {
    /// The number a layout file spells the generation with.
    pub fn number(self) -> u8 {
        match self {
            Generation::Frozen1 => 1,
            Generation::Subset2 => 2,
            Generation::Signed3 => 3,
        }
    }

    /// Whether a word wider than the line is cut when nothing precedes it on its line.
    pub(super) fn cuts_a_long_first_word(self) -> bool {
        match self {
            Generation::Frozen1 => frozen_v1::CUTS_A_LONG_FIRST_WORD,
            Generation::Subset2 | Generation::Signed3 => true,
        }
    }

    /// Whether the PDF carries a signature whose appearance is the seal.
    pub fn is_signed(self) -> bool {
        self == Generation::Signed3
    }
}

impl TryFrom<u8> for Generation {
    type Error = String;

    fn try_from(number: u8) -> Result<Generation, String> {
        match number {
            1 => Ok(Generation::Frozen1),
            2 => Ok(Generation::Subset2),
            3 => Ok(Generation::Signed3),
            other => Err(format!("renderer {other} is not 1, 2 or 3")),
        }
    }
}

impl From<Generation> for u8 {
    fn from(generation: Generation) -> u8 {
        generation.number()
    }
}

/// Shown as its number, as the layout files and the benchmark's report spell it.
impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// A layout file (`templates/layouts/{name}.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// The renderer that draws this layout: 1, 2 or 3 (`templates/layouts/standard.toml`).
    pub renderer: Generation,
    pub page_width: f32,
    pub page_height: f32,
    pub margin: f32,
    pub padding: f32,
    pub border_colour: String,
    pub text_colour: String,
    pub muted_colour: String,
    pub title_size: f32,
    pub number_size: f32,
    pub label_size: f32,
    pub value_size: f32,
    pub min_value_size: f32,
    pub label_width: f32,
    pub line_height: f32,
    pub row_gap: f32,
    pub qr_size: f32,
    /// Modules of white kept clear under the QR code before its caption: a reader needs four
    /// (ISO/IEC 18004). Absent, the caption sits 5 mm under the code whatever its module size,
    /// as `standard` and `standard-v2` were issued (1.4 mm of it is clear: under three modules).
    #[serde(default)]
    pub qr_quiet_zone: Option<f32>,
    /// The smallest side the QR code may shrink to, a millimetre at a time, when the rows would
    /// not fit above a larger one even at `min_value_size` (a record with every field at its
    /// longest). Absent, the code is always `qr_size`.
    #[serde(default)]
    pub qr_min_size: Option<f32>,
    pub seal_radius: f32,
    pub seal_colour: String,
    pub footer: String,
}

/// `#rrggbb` as a PDF colour, or `None` when it is not that.
pub(super) fn colour(hex: &str) -> Option<Color> {
    let hex = hex.strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let channel = |i: usize| {
        u8::from_str_radix(&hex[i..i + 2], 16)
            .ok()
            .map(|v| f32::from(v) / 255.0)
    };
    Some(Color::Rgb(Rgb {
        r: channel(0)?,
        g: channel(2)?,
        b: channel(4)?,
        icc_profile: None,
    }))
}

impl Layout {
    fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("border_colour", &self.border_colour),
            ("text_colour", &self.text_colour),
            ("muted_colour", &self.muted_colour),
            ("seal_colour", &self.seal_colour),
        ] {
            if colour(value).is_none() {
                return Err(format!("{name} {value:?} is not #rrggbb"));
            }
        }
        let sizes = [
            self.page_width,
            self.page_height,
            self.title_size,
            self.number_size,
            self.label_size,
            self.value_size,
            self.min_value_size,
            self.label_width,
            self.line_height,
            self.qr_size,
            self.seal_radius,
        ];
        if sizes.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
            return Err("sizes must be positive numbers".into());
        }
        if self
            .qr_quiet_zone
            .is_some_and(|modules| !(modules >= 0.0 && modules.is_finite()))
        {
            return Err("qr_quiet_zone must be a number of modules, 0 or more".into());
        }
        if self
            .qr_min_size
            .is_some_and(|side| !(side > 0.0 && side <= self.qr_size))
        {
            return Err("qr_min_size must be positive and at most qr_size".into());
        }
        if self.min_value_size > self.value_size {
            return Err("min_value_size is larger than value_size".into());
        }
        Ok(())
    }
}

/// Every layout in `folder`, by file stem, each parsed and checked.
pub(super) fn load_layouts(folder: &Path) -> Result<BTreeMap<String, Layout>, RenderError> {
    let fail = |file: &Path, reason: String| RenderError::Layout {
        file: file.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(folder).map_err(|e| fail(folder, e.to_string()))?;
    let mut layouts = BTreeMap::new();
    for entry in entries {
        let file = entry.map_err(|e| fail(folder, e.to_string()))?.path();
        let (Some(name), Some("toml")) = (
            file.file_stem().and_then(|n| n.to_str()),
            file.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).map_err(|e| fail(&file, e.to_string()))?;
        let layout: Layout = toml::from_str(&text).map_err(|e| fail(&file, e.to_string()))?;
        layout.check().map_err(|reason| fail(&file, reason))?;
        layouts.insert(name.to_string(), layout);
    }
    Ok(layouts)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::render::templates_for_tests as templates;

    #[test]
    fn every_shipped_layout_loads_with_its_renderer() {
        let layouts = load_layouts(&templates().join("layouts")).unwrap();
        assert_eq!(layouts["standard"].renderer, Generation::Frozen1);
        assert_eq!(layouts["standard-v2"].renderer, Generation::Subset2);
        assert_eq!(layouts["signed-v3"].renderer, Generation::Signed3);
    }

    #[test]
    fn a_layout_naming_an_unknown_renderer_is_refused_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(templates().join("layouts/standard.toml"))
            .unwrap()
            .replace("renderer = 1", "renderer = 4");
        std::fs::write(dir.path().join("odd.toml"), text).unwrap();
        let error = load_layouts(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("odd.toml") && error.contains("renderer 4 is not 1, 2 or 3"),
            "{error}"
        );
    }

    #[test]
    fn a_generation_keeps_the_number_its_layout_file_spells() {
        for number in [1u8, 2, 3] {
            let generation = Generation::try_from(number).unwrap();
            assert_eq!(u8::from(generation), number);
            assert_eq!(generation.to_string(), number.to_string());
        }
    }
}
