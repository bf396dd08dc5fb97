//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations and the
//! types they read and answer, served at `/api/v1/openapi.json` for integrators' client generators.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{api, log};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "elicence",
        description = "Signed electronic licences of a county: the licence directory, issuing and \
                       changing licences, batch conversion of stock licences, verification, the \
                       audit trail, the change feed of the city e-licence library and the supervision stream. \
                       Errors are `{\"error\": {\"code\", \"message\"}}` (SPEC §10)."
    ),
    paths(
        api::health,
        api::readiness,
        api::metrics,
        api::openapi,
        api::directory,
        api::licence_type,
        api::issue,
        api::show,
        api::versions,
        api::pdf,
        api::qr_png,
        api::qr_svg,
        api::amend,
        api::renew,
        api::suspend,
        api::reinstate,
        api::revoke,
        api::verify,
        api::verification_page,
        api::trust_list,
        api::status_list,
        api::status_list_aggregation,
        log::head,
        log::heads,
        log::receipt,
        log::consistency,
        api::audit,
        api::supervision_summary,
        api::submit_batch,
        api::batch,
        api::feed,
        api::supervision_audit,
    ),
    modifiers(&BearerAuth, &StandardErrors)
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme the protected routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds the error answers the framework and the shared extractors give, wherever they can occur,
/// so that each handler's annotation lists only what is particular to it: 400 for a malformed
/// parameter or body, 413/415/422 for a JSON body too large, of another type or of the wrong
/// shape, 401/403 on a protected route, 404 for a path naming something absent.
struct StandardErrors;

impl Modify for StandardErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                for (status, description) in standard_errors(operation) {
                    let error = ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        )
                        .build();
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert(error.into());
                }
            }
        }
    }
}

fn standard_errors(operation: &Operation) -> Vec<(u16, &'static str)> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let in_path = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let json_body = operation
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let mut errors = Vec::new();
    if !parameters.is_empty() || operation.request_body.is_some() {
        errors.push((
            400,
            "Malformed request: a parameter or the body could not be read",
        ));
    }
    if json_body {
        errors.push((413, "The body is larger than the limit"));
        errors.push((415, "The body is not `application/json`"));
        errors.push((422, "The JSON body does not have the documented shape"));
    }
    if operation.security.is_some() {
        errors.push((401, "No or unknown bearer token"));
        errors.push((403, "Role or department refused"));
    }
    if in_path {
        errors.push((404, "Nothing of that name"));
    }
    errors
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serialises")
    })
}
