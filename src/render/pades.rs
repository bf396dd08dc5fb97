//! Renderer 3's signature (docs/FORMATS.md §10): renderer 2's page, signed by the department's
//! PDF seal as PAdES baseline B-B (ETSI EN 319 142-1). The seal, laid out as a second page in
//! the page's own font subset, becomes the appearance of the signature's widget, exactly where
//! renderer 2 stamps it, so the reader sees the red seal as the electronic seal. /ByteRange
//! covers the whole file but /Contents; the signing time is the version's issue time, in /M;
//! the CMS signature is deterministic (RFC 6979), so a re-render is byte-identical.

use lopdf::{dictionary, Dictionary, Object, ObjectId, Stream, StringFormat};
use printpdf::{Mm, PdfDocument, Pt};

use crate::signing::claims::FullRecord;
use crate::signing::pdf_seal::PdfSeal;
use crate::time_util;

use super::document::{finish, lay_out_with_own_subset, write};
use super::{Composed, RenderError, Renderer};

/// Bytes kept for the CMS signature in /Contents: a signature with the seal's and the seal CA's
/// certificates takes about 1.5 KB.
const SIGNATURE_ROOM: usize = 3 * 1024;

/// What /ByteRange holds until the file is written: ten digits each, so the real offsets fit.
const BYTE_RANGE_PLACEHOLDER: i64 = 9_999_999_999;

/// Renderer 3: renderer 2's document with the seal as a signature's appearance, signed.
pub(super) fn save_signed(
    renderer: &Renderer,
    doc: PdfDocument,
    page: Composed,
    full: &FullRecord,
    seal: &PdfSeal,
) -> Result<Vec<u8>, RenderError> {
    let id = full.claims.cti.to_string();
    let square = page
        .seal
        .as_ref()
        .map(|(_, square)| *square)
        .ok_or_else(|| RenderError::Write("renderer 3 drew no seal".into()))?;
    let font_name = page.font.0.clone();
    let (mut pdf, font) = lay_out_with_own_subset(renderer, doc, page)?;
    let rect: Vec<Object> = square
        .iter()
        .map(|&mm| Object::Real(Pt::from(Mm(mm)).0))
        .collect();
    let appearance = seal_appearance(&mut pdf, &rect, &font_name, font)?;
    add_signature_field(&mut pdf, rect, appearance, full, seal)?;
    finish(&mut pdf, &id);
    let mut bytes = write(&mut pdf)?;
    sign_in_place(&mut bytes, seal)?;
    Ok(bytes)
}

/// Turns the document's second page, the seal, into a form XObject over the seal's square and
/// removes the page. The seal's red ink multiplies with what is under it, as a stamp's does,
/// so the issuer's name and date stay readable through it.
fn seal_appearance(
    pdf: &mut lopdf::Document,
    rect: &[Object],
    font_name: &str,
    font: ObjectId,
) -> Result<ObjectId, RenderError> {
    let pages = pdf.get_pages();
    let (Some(&page), Some(&seal_page)) = (pages.get(&1), pages.get(&2)) else {
        return Err(RenderError::Write("printpdf wrote no seal page".into()));
    };
    let mut content = b"q /Stamp gs\n".to_vec();
    content.extend(pdf.get_page_content(seal_page));
    content.extend(b"\nQ");
    for contents in pdf.get_page_contents(seal_page) {
        pdf.delete_object(contents);
    }
    pdf.delete_object(seal_page);
    let tree = pdf
        .get_dictionary(page)
        .and_then(|p| p.get(b"Parent"))
        .and_then(Object::as_reference)
        .map_err(|_| RenderError::Write("the page has no parent".into()))?;
    let kids = pdf
        .get_dictionary_mut(tree)
        .map_err(|_| RenderError::Write("no page tree".into()))?;
    kids.set("Kids", vec![Object::Reference(page)]);
    kids.set("Count", 1);
    let form = Stream::new(
        dictionary! {
            "Type" => "XObject",
            "Subtype" => "Form",
            "BBox" => rect.to_vec(),
            "Resources" => dictionary! {
                "Font" => Dictionary::from_iter([(font_name.as_bytes().to_vec(), Object::Reference(font))]),
                "ExtGState" => dictionary! { "Stamp" => dictionary! { "Type" => "ExtGState", "BM" => "Multiply" } },
            },
        },
        content,
    );
    Ok(pdf.add_object(form))
}

/// The signature dictionary (placeholders for /ByteRange and /Contents), its field merged with
/// the widget showing the seal, the page's /Annots and the catalog's /AcroForm.
fn add_signature_field(
    pdf: &mut lopdf::Document,
    rect: Vec<Object>,
    appearance: ObjectId,
    full: &FullRecord,
    seal: &PdfSeal,
) -> Result<(), RenderError> {
    let page = *pdf
        .get_pages()
        .get(&1)
        .ok_or_else(|| RenderError::Write("no page".into()))?;
    let signature = pdf.add_object(dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => vec![Object::Integer(0), Object::Integer(BYTE_RANGE_PLACEHOLDER),
            Object::Integer(BYTE_RANGE_PLACEHOLDER), Object::Integer(BYTE_RANGE_PLACEHOLDER)],
        "Contents" => Object::String(vec![0; SIGNATURE_ROOM], StringFormat::Hexadecimal),
        "M" => Object::string_literal(pdf_date(full.claims.iat)),
        "Name" => text_string(&seal.signer_name()),
    });
    let widget = pdf.add_object(dictionary! {
        "Type" => "Annot",
        "Subtype" => "Widget",
        "FT" => "Sig",
        "T" => Object::string_literal("seal"),
        // Print, Locked: printed with the page, not movable.
        "F" => 132,
        "Rect" => rect,
        "P" => Object::Reference(page),
        "V" => Object::Reference(signature),
        "AP" => dictionary! { "N" => Object::Reference(appearance) },
    });
    pdf.get_dictionary_mut(page)
        .map_err(|_| RenderError::Write("no page".into()))?
        .set("Annots", vec![Object::Reference(widget)]);
    pdf.catalog_mut()
        .map_err(|_| RenderError::Write("no catalog".into()))?
        .set(
            "AcroForm",
            dictionary! {
                "Fields" => vec![Object::Reference(widget)],
                // SignaturesExist, AppendOnly.
                "SigFlags" => 3,
            },
        );
    Ok(())
}

/// Fills /ByteRange with the offsets around /Contents and /Contents with the CMS signature over
/// those bytes.
fn sign_in_place(bytes: &mut [u8], seal: &PdfSeal) -> Result<(), RenderError> {
    let missing = |what: &str| RenderError::Sign(format!("no {what} placeholder in the file"));
    let placeholder =
        format!("[0 {BYTE_RANGE_PLACEHOLDER} {BYTE_RANGE_PLACEHOLDER} {BYTE_RANGE_PLACEHOLDER}]");
    let range_at = find(bytes, placeholder.as_bytes()).ok_or_else(|| missing("/ByteRange"))?;
    let mut hole = vec![b'0'; 2 * SIGNATURE_ROOM + 2];
    hole[0] = b'<';
    *hole.last_mut().expect("not empty") = b'>';
    let start = find(bytes, &hole).ok_or_else(|| missing("/Contents"))?;
    let end = start + hole.len();
    let range = format!("[0 {start} {end} {}]", bytes.len() - end);
    let padded = format!("{range:<width$}", width = placeholder.len());
    bytes[range_at..range_at + padded.len()].copy_from_slice(padded.as_bytes());

    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(&bytes[..start]);
    context.update(&bytes[end..]);
    let digest: [u8; 32] = context
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    let cms = seal
        .sign_detached(&digest)
        .map_err(|e| RenderError::Sign(e.to_string()))?;
    if cms.len() > SIGNATURE_ROOM {
        return Err(RenderError::Sign(format!(
            "the signature takes {} bytes, more than the {SIGNATURE_ROOM} kept",
            cms.len()
        )));
    }
    let hex = data_encoding::HEXUPPER.encode(&cms);
    bytes[start + 1..start + 1 + hex.len()].copy_from_slice(hex.as_bytes());
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A PDF date (`D:20260102110405+08'00'`) of the instant, in China Standard Time.
fn pdf_date(unix: i64) -> String {
    let at = time_util::from_unix(unix).to_offset(time::macros::offset!(+8));
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+08'00'",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A PDF text string: UTF-16BE with its byte order mark, as text outside Latin-1 must be.
fn text_string(text: &str) -> Object {
    let mut bytes = vec![0xfe, 0xff];
    bytes.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
    Object::String(bytes, StringFormat::Hexadecimal)
}
