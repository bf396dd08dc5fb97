//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations and the
//! types they read and answer, served at `/api/v1/openapi.json` for integrators' client generators.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "elicence",
        description = "Signed electronic licences of a county: the licence directory, issuing and \
                       changing licences, batch conversion of stock licences, verification, the \
                       audit trail and the change feed of the city e-licence library. \
                       Errors are `{\"error\": {\"code\", \"message\"}}` (SPEC §10)."
    ),
    paths(
        api::health,
        api::metrics,
        api::openapi,
        api::directory,
        api::licence_type,
        api::issue,
        api::show,
        api::versions,
        api::pdf,
        api::amend,
        api::renew,
        api::suspend,
        api::reinstate,
        api::revoke,
        api::verify,
        api::verification_page,
        api::trust_list,
        api::status_list,
        api::audit,
        api::submit_batch,
        api::batch,
        api::feed,
    ),
    modifiers(&BearerAuth)
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

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the document serialises")
    })
}
