//! `bench qr`: whether each sample licence's QR code reads from its whole page as a screen shows
//! it and as a chat app passes a screenshot on, per layout. Pages are rasterised by poppler's
//! `pdftoppm` and read by `zbarimg` (QR only), the tools a reader has
//! (`tools/install-test-deps.sh`); a reading counts only when the text is the QR text, character
//! for character. The integration test of the page (tests/integration/qr_screen.rs) uses the
//! same functions, so the README's table and the test measure the same thing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::Serialize;

use crate::app::{Actor, App};
use crate::directory::{HolderKind, LicenceType};
use crate::licence::RecordInput;
use crate::render::Renderer;
use crate::signing::claims::FullRecord;
use crate::signing::pdf_seal::PdfSeal;
use crate::signing::qr;

/// The resolutions measured: a PDF viewer at 100 % on a Mac-era (72 dpi) or ordinary (96 dpi)
/// screen, the 100 dpi screenshot of the issue, and a sharp screen or a phone photo (150 dpi).
pub const DPIS: [u32; 4] = [72, 96, 100, 150];

/// A degraded image's Gaussian blur (standard deviation in pixels: "blurred by 1 px").
pub const BLUR_SIGMA: f32 = 1.0;

/// A degraded image's JPEG quality, what chat apps send previews at.
pub const JPEG_QUALITY: u8 = 50;

/// A company name as long as they come (32 characters): its token is the largest of the samples.
pub const LONG_COMPANY_NAME: &str =
    "示范县城关镇人民路八十八号百味餐饮管理服务有限责任公司第一分公司";

/// How the page image reaches the code reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// As a screen shows it: pdftoppm's PNG, untouched.
    Clean,
    /// As a chat app passes a screenshot on: blurred ([`BLUR_SIGMA`]), saved as JPEG
    /// ([`JPEG_QUALITY`]).
    Degraded,
}

/// A licence to render: its type, its signed full record, its QR text and its signer's PDF
/// seal (for a layout that signs).
pub struct Sample {
    pub name: String,
    pub licence_type: LicenceType,
    pub full: FullRecord,
    pub qr_text: String,
    pub seal: PdfSeal,
}

/// One licence of each directory type with its example record, and one held by a company with
/// [`LONG_COMPANY_NAME`] (the first organisation type's), issued on `app`.
pub async fn samples(app: &App) -> anyhow::Result<Vec<Sample>> {
    let mut records: Vec<(String, LicenceType, RecordInput)> = app
        .directory
        .types()
        .map(|t| (t.name.clone(), t.clone(), RecordInput::example_of(t)))
        .collect();
    if let Some(t) = app
        .directory
        .types()
        .find(|t| t.holder_kind == HolderKind::Organisation)
    {
        let mut record = RecordInput::example_of(t);
        record.holder.name = LONG_COMPANY_NAME.into();
        records.push((format!("{}（长名称）", t.name), t.clone(), record));
    }
    let actor = Actor::local_operator();
    let run = rand::random::<u32>();
    let mut samples = Vec::with_capacity(records.len());
    for (i, (name, licence_type, mut record)) in records.into_iter().enumerate() {
        record.number = Some(format!("QR-{run}-{i}"));
        let code = licence_type.code.as_str();
        let issued = app.issue(&actor, code, &record, None).await?;
        let row = app.find(&issued.licence_id).await?;
        let stored = app
            .store
            .version(row.pk, 1)
            .await?
            .context("a version just issued is not in the store")?;
        samples.push(Sample {
            name,
            licence_type,
            full: stored.full()?,
            qr_text: issued.qr_text,
            seal: app.pdf_seal(&stored.kid)?,
        });
    }
    Ok(samples)
}

/// A sample's PDF on disk, and the side its layout gave the QR code.
pub struct Rendered {
    pub pdf: PathBuf,
    pub qr_side_mm: f32,
}

/// Renders `sample` with `layout` into `{dir}/{file_stem}.pdf`.
pub fn render_with_layout(
    renderer: &Renderer,
    layout: &str,
    sample: &Sample,
    dir: &Path,
    file_stem: &str,
) -> anyhow::Result<Rendered> {
    let mut licence_type = sample.licence_type.clone();
    licence_type.template = layout.to_string();
    let page = renderer.compose(&licence_type, &sample.full, &sample.qr_text)?;
    let qr_side_mm = page.qr_side();
    let pdf = renderer.save(page, &sample.full, Some(&sample.seal))?;
    let path = dir.join(format!("{file_stem}.pdf"));
    std::fs::write(&path, pdf).with_context(|| format!("writing {}", path.display()))?;
    Ok(Rendered {
        pdf: path,
        qr_side_mm,
    })
}

/// The page of `pdf` as an image file at `dpi` under `condition`: `{stem}-{dpi}.png` beside it,
/// and for a degraded image `{stem}-{dpi}.jpg` made from that.
pub fn page_image(pdf: &Path, dpi: u32, condition: Condition) -> anyhow::Result<PathBuf> {
    let png = rasterise(pdf, dpi)?;
    match condition {
        Condition::Clean => Ok(png),
        Condition::Degraded => degrade(&png),
    }
}

/// The first page of `pdf` at `dpi` as a PNG beside it, by pdftoppm.
fn rasterise(pdf: &Path, dpi: u32) -> anyhow::Result<PathBuf> {
    let stem = pdf.with_extension("");
    let prefix = PathBuf::from(format!("{}-{dpi}", stem.display()));
    let pdf_arg = pdf.to_str().context("a PDF path that is not UTF-8")?;
    let prefix_arg = prefix.to_str().context("a path that is not UTF-8")?;
    let dpi_arg = dpi.to_string();
    run(
        "pdftoppm",
        &["-r", &dpi_arg, "-png", "-singlefile", pdf_arg, prefix_arg],
    )?;
    Ok(prefix.with_extension("png"))
}

/// `png` blurred and saved as JPEG beside it (`.jpg`).
fn degrade(png: &Path) -> anyhow::Result<PathBuf> {
    let image = image::open(png)
        .with_context(|| format!("reading {}", png.display()))?
        .to_rgb8();
    let blurred = image::imageops::blur(&image, BLUR_SIGMA);
    let (width, height) = blurred.dimensions();
    let too_large = || anyhow::anyhow!("{}: too large for JPEG", png.display());
    let width = u16::try_from(width).map_err(|_| too_large())?;
    let height = u16::try_from(height).map_err(|_| too_large())?;
    let jpeg = png.with_extension("jpg");
    jpeg_encoder::Encoder::new_file(&jpeg, JPEG_QUALITY)?.encode(
        blurred.as_raw(),
        width,
        height,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(jpeg)
}

/// The text of the QR code zbarimg reads in `image`, or None when it finds none. Other symbols
/// are not looked for: zbar's linear decoders read digits out of lettering now and then.
pub fn read_qr(image: &Path) -> anyhow::Result<Option<String>> {
    let path = image.to_str().context("an image path that is not UTF-8")?;
    let out = Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", path])
        .output()
        .context("zbarimg is needed (tools/install-test-deps.sh)")?;
    // zbarimg exits 4 when the image holds no symbol it can read.
    match out.status.code() {
        Some(0) => {
            let text = String::from_utf8(out.stdout).context("zbarimg printed non-UTF-8")?;
            Ok(Some(text.strip_suffix('\n').unwrap_or(&text).to_string()))
        }
        Some(4) => Ok(None),
        _ => bail!(
            "zbarimg {path}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    }
}

/// Runs a tool, failing with its error output when it fails.
fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("{program} is needed (tools/install-test-deps.sh)"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether one image of one page gave back the QR text.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub dpi: u32,
    pub condition: Condition,
    pub decoded: bool,
}

/// One sample under one layout: its code's geometry and every reading.
#[derive(Debug, Clone, Serialize)]
pub struct SampleResult {
    pub layout: String,
    pub sample: String,
    pub qr_version: i16,
    /// Modules per side, without the quiet zone.
    pub modules: usize,
    pub module_mm: f32,
    pub readings: Vec<Reading>,
}

impl SampleResult {
    /// A module's side in pixels at `dpi`.
    pub fn module_px(&self, dpi: u32) -> f32 {
        self.module_mm / 25.4 * dpi as f32
    }

    fn decoded(&self, dpi: u32, condition: Condition) -> Option<bool> {
        self.readings
            .iter()
            .find(|r| r.dpi == dpi && r.condition == condition)
            .map(|r| r.decoded)
    }
}

/// Renders `sample` with `layout` in `dir` and reads its code at every dpi of [`DPIS`], clean
/// and degraded.
pub fn measure(
    renderer: &Renderer,
    layout: &str,
    sample: &Sample,
    dir: &Path,
    file_stem: &str,
) -> anyhow::Result<SampleResult> {
    let code = qr::qr_code(&sample.qr_text)?;
    let Rendered { pdf, qr_side_mm } =
        render_with_layout(renderer, layout, sample, dir, file_stem)?;
    let mut readings = Vec::new();
    for dpi in DPIS {
        for condition in [Condition::Clean, Condition::Degraded] {
            let image = page_image(&pdf, dpi, condition)?;
            let decoded = read_qr(&image)?.as_deref() == Some(sample.qr_text.as_str());
            readings.push(Reading {
                dpi,
                condition,
                decoded,
            });
        }
    }
    let qr_version = match code.version() {
        qrcode::Version::Normal(v) | qrcode::Version::Micro(v) => v,
    };
    Ok(SampleResult {
        layout: layout.to_string(),
        sample: sample.name.clone(),
        qr_version,
        modules: code.width(),
        module_mm: qr_side_mm / code.width() as f32,
        readings,
    })
}

/// The results as markdown: per layout, the share of samples read at each dpi, clean and
/// degraded; then each sample's code and readings.
pub fn markdown(results: &[SampleResult]) -> String {
    let mut layouts: Vec<&str> = results.iter().map(|r| r.layout.as_str()).collect();
    layouts.dedup();
    let columns: Vec<(u32, Condition)> = DPIS
        .iter()
        .flat_map(|&dpi| [(dpi, Condition::Clean), (dpi, Condition::Degraded)])
        .collect();
    let header = |first: &str| {
        let names: Vec<String> = columns
            .iter()
            .map(|&(dpi, condition)| match condition {
                Condition::Clean => format!("{dpi} dpi"),
                Condition::Degraded => format!("{dpi} dpi blur+JPEG"),
            })
            .collect();
        format!(
            "| {first} | {} |\n|{}",
            names.join(" | "),
            "---|".repeat(names.len() + first.matches('|').count() + 1)
        )
    };
    let mut out = vec![header("layout | QR side")];
    for layout in &layouts {
        let of_layout: Vec<&SampleResult> =
            results.iter().filter(|r| r.layout == *layout).collect();
        let side = of_layout
            .first()
            .map_or(0.0, |r| r.module_mm * r.modules as f32);
        let rates: Vec<String> = columns
            .iter()
            .map(|&(dpi, condition)| {
                let read = of_layout
                    .iter()
                    .filter(|r| r.decoded(dpi, condition) == Some(true))
                    .count();
                format!("{read}/{}", of_layout.len())
            })
            .collect();
        out.push(format!(
            "| {layout} | {side:.0} mm | {} |",
            rates.join(" | ")
        ));
    }
    out.push(String::new());
    let px_header = DPIS.map(|d| d.to_string()).join("/");
    out.push(header(&format!(
        "layout | sample | QR version | module mm | module px at {px_header} dpi"
    )));
    for r in results {
        let px: Vec<String> = DPIS
            .iter()
            .map(|&d| format!("{:.1}", r.module_px(d)))
            .collect();
        let marks: Vec<&str> = columns
            .iter()
            .map(|&(dpi, condition)| match r.decoded(dpi, condition) {
                Some(true) => "✓",
                Some(false) => "✗",
                None => "",
            })
            .collect();
        out.push(format!(
            "| {} | {} | {} ({}×{}) | {:.2} | {} | {} |",
            r.layout,
            r.sample,
            r.qr_version,
            r.modules,
            r.modules,
            r.module_mm,
            px.join(" / "),
            marks.join(" | ")
        ));
    }
    out.join("\n")
}

/// Every sample under each of `layouts` (every layout loaded when empty), rendered and read in
/// `dir`.
pub async fn run_all(
    app: &App,
    layouts: &[String],
    dir: &Path,
) -> anyhow::Result<Vec<SampleResult>> {
    let layouts: Vec<String> = if layouts.is_empty() {
        app.renderer
            .layouts()
            .map(|(name, _)| name.to_string())
            .collect()
    } else {
        layouts.to_vec()
    };
    let samples = samples(app).await?;
    let mut results = Vec::new();
    for layout in &layouts {
        for (i, sample) in samples.iter().enumerate() {
            let stem = format!("{layout}-{i}");
            results.push(measure(&app.renderer, layout, sample, dir, &stem)?);
        }
    }
    Ok(results)
}
