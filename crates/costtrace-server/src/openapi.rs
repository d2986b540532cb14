//! `GET /openapi.json`: the OpenAPI 3.1 description of the API, generated
//! from the handlers' `#[utoipa::path]` attributes and the response types
//! (the same router that serves the requests collects it, so a route cannot
//! be served without being documented). The tests check that every
//! documented path answers with a documented status and that the documented
//! properties are exactly the fields the server returns.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;

/// The document, built once from the router.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut doc) = crate::api_router().split_for_parts();
        doc.info.title = "costtrace".to_owned();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        doc.info.description = Some(
            "What every AI call and paid service costs, and for whom. Timestamps are RFC 3339 \
             UTC with milliseconds; money is in dollars (`*_usd`) and exact nano-USD \
             (`*_nanos`); errors are `{\"detail\": \"...\"}`. Send `Authorization: Bearer KEY`; \
             a tenant key sees only its tenant (anything else answers 404)."
                .to_owned(),
        );
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        doc.tags = Some(
            [
                ("requests", "Requests and the services they used"),
                ("costs", "Task, document, entity and summary costs"),
                ("ingest", "Records from other processes"),
                ("meta", "Health, metrics and this document"),
            ]
            .into_iter()
            .map(|(name, d)| TagBuilder::new().name(name).description(Some(d)).build())
            .collect(),
        );
        doc
    })
}

/// The OpenAPI document
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "OpenAPI 3.1 JSON", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        serde_json::to_string(document()).unwrap_or_else(|e| format!("{{\"detail\": \"{e}\"}}"))
    });
    ([(header::CONTENT_TYPE, "application/json")], body.as_str())
}
