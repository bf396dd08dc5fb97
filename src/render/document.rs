//! Writing the file: the document's metadata, printpdf's save options, stream compression, the
//! trailer `/ID`, and renderer 2's writer, which adds the page's own font subset and QR form to
//! what printpdf lays out. A room of its own because it is the last stage, bytes out, and
//! because every part of it decides whether the same version renders to the same bytes.

use lopdf::Object;
use printpdf::{Mm, PdfDocument, PdfPage, PdfSaveOptions};

use crate::signing::claims::FullRecord;

use super::font_subset::FontSubset;
use super::qr_form::QR_FORM;
use super::{Composed, RenderError, Renderer};

/// The document around the page, its metadata derived from the version so renders repeat.
pub(super) fn document(full: &FullRecord, id: &str) -> PdfDocument {
    let mut doc = PdfDocument::new(&format!("{} {}", full.licence_name, full.record.number));
    // The version's issue time, not the clock (printpdf's default is 1970 or now).
    let info = &mut doc.metadata.info;
    if let Ok(issued) = printpdf::DateTime::from_unix_timestamp(full.claims.iat) {
        info.creation_date = issued;
        info.modification_date = issued;
        info.metadata_date = issued;
    }
    info.identifier = id.to_string();
    info.author = full.claims.iss.to_string();
    info.creator = "elicence".into();
    info.producer = "elicence".into();
    info.subject = id.to_string();
    doc
}

/// Renderer 2: printpdf lays out the document; the font is subset here, once per page
/// with `subsetter` from bytes parsed at start-up, and written as a CID-keyed CFF
/// (Type0, Identity-H, with /W and /ToUnicode).
pub(super) fn save_with_own_subset(
    renderer: &Renderer,
    doc: PdfDocument,
    page: Composed,
    id: &str,
) -> Result<Vec<u8>, RenderError> {
    let (mut pdf, _) = lay_out_with_own_subset(renderer, doc, page)?;
    finish(&mut pdf, id);
    write(&mut pdf)
}

/// The document as renderer 2 lays it out, before compression: the page, its font subset and
/// QR form. A page carrying its seal apart (renderer 3) gets it as a second page set in the
/// same subset, for `pades` to turn into the signature's appearance; returned with the font's
/// object id.
pub(super) fn lay_out_with_own_subset(
    renderer: &Renderer,
    mut doc: PdfDocument,
    page: Composed,
) -> Result<(lopdf::Document, lopdf::ObjectId), RenderError> {
    let mut subset = FontSubset::default();
    let ops = subset.encode(renderer, page.ops);
    let mut pages = vec![PdfPage::new(Mm(page.width), Mm(page.height), ops)];
    if let Some((seal_ops, _)) = page.seal {
        let seal_ops = subset.encode(renderer, seal_ops);
        pages.push(PdfPage::new(Mm(page.width), Mm(page.height), seal_ops));
    }
    let mut pdf = doc
        .with_pages(pages)
        .to_lopdf_document(&uncompressed(), &mut Vec::new());
    let font = subset.write(&mut pdf, &renderer.font, &page.font)?;
    page_resources(&mut pdf, b"Font")?.set(page.font.0.as_bytes(), Object::Reference(font));
    if let Some(form) = page.qr_form {
        let form = pdf.add_object(form.into_stream());
        page_resources(&mut pdf, b"XObject")?.set(QR_FORM, Object::Reference(form));
    }
    Ok((pdf, font))
}

/// Compresses the streams and sets the trailer `/ID` derived from the version.
pub(super) fn finish(pdf: &mut lopdf::Document, id: &str) {
    deflate_streams(pdf);
    let (first, second) = trailer_id(id);
    pdf.trailer.set(
        "ID",
        vec![
            Object::string_literal(first),
            Object::string_literal(second),
        ],
    );
}

/// The document's bytes.
pub(super) fn write(pdf: &mut lopdf::Document) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(48 * 1024);
    pdf.save_to(&mut out)
        .map_err(|e| RenderError::Write(e.to_string()))?;
    Ok(out)
}

/// printpdf's save options for a file written uncompressed: its own optimisation deflates at
/// zlib level 9, two thirds of the render time; `deflate_streams` does it at level 2 instead
/// (3 % larger, a tenth of the time; measured with `bench render`).
pub(super) fn uncompressed() -> PdfSaveOptions {
    PdfSaveOptions {
        optimize: false,
        ..Default::default()
    }
}

/// Deflates at zlib level 2 every stream not compressed yet that allows it.
pub(super) fn deflate_streams(pdf: &mut lopdf::Document) {
    use std::io::Write;
    for object in pdf.objects.values_mut() {
        if let Object::Stream(stream) = object {
            if !stream.allows_compression || stream.dict.get(b"Filter").is_ok() {
                continue;
            }
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(2));
            if encoder.write_all(&stream.content).is_err() {
                continue;
            }
            if let Ok(compressed) = encoder.finish() {
                if compressed.len() < stream.content.len() {
                    stream.dict.set("Filter", "FlateDecode");
                    stream.set_content(compressed);
                }
            }
        }
    }
}

/// The trailer's `/ID` pair: the two halves of the version identifier's SHA-256 in hex.
pub(super) fn trailer_id(identifier: &str) -> (String, String) {
    let digest = data_encoding::HEXUPPER.encode(&crate::hash::sha256(identifier.as_bytes()));
    let (first, second) = digest.split_at(32);
    (first.to_string(), second.to_string())
}

/// One of the page's resource dictionaries (/Font, /XObject), which printpdf always writes.
fn page_resources<'a>(
    pdf: &'a mut lopdf::Document,
    kind: &[u8],
) -> Result<&'a mut lopdf::Dictionary, RenderError> {
    let missing = |what: &str| RenderError::Write(format!("printpdf wrote no {what}"));
    let page = *pdf
        .get_pages()
        .values()
        .next()
        .ok_or_else(|| missing("page"))?;
    let reference = |dict: lopdf::Result<&lopdf::Dictionary>, key: &[u8]| {
        dict.and_then(|d| d.get(key)).and_then(Object::as_reference)
    };
    let resources =
        reference(pdf.get_dictionary(page), b"Resources").map_err(|_| missing("page resources"))?;
    let dictionary =
        reference(pdf.get_dictionary(resources), kind).map_err(|_| missing("resources"))?;
    pdf.get_dictionary_mut(dictionary)
        .map_err(|_| missing("resources"))
}
