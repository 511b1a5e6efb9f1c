//! `GET /api/openapi.json`: the OpenAPI 3.1 description, generated (`utoipa`) from the same
//! route declarations that build the router (`http::routes`), so the two cannot drift. Every
//! private operation is given the bearer security scheme and the refusals the guard, the
//! parameters and the engine can answer with, all with [`ErrorBody`].

use crate::error::ErrorBody;

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{OpenApi as _, ToSchema};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "databrain 数据大脑",
        description = "Indicators, alerts, trends and the streamed city twin of the Jiangsu data brain. \
            Every answer is made for the caller's role and region scope."
    ),
    components(schemas(ErrorBody))
)]
struct Base;

fn refusal(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        ErrorBody::name(),
                    ))))
                    .build(),
            )
            .build(),
    )
}

/// The refusals every private operation may answer with.
fn guarded(operation: &mut Operation) {
    for (status, description) in [
        ("400", "a bad parameter, named in the JSON body"),
        ("401", "no token, or an unknown one"),
        ("403", "outside the token's role or region scope"),
        ("404", "no such indicator or scene"),
        ("429", "too many requests for this token or address"),
        ("503", "no data loaded yet, or no renderer"),
    ] {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| refusal(description));
    }
    operation.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
}

/// The description of both routers: the public one as declared, the private one with its
/// refusals and security.
pub(crate) fn document(public: OpenApi, mut private: OpenApi) -> OpenApi {
    for item in private.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            guarded(operation);
        }
    }
    let mut api = Base::openapi();
    api.merge(public);
    api.merge(private);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    api
}

/// The description served, for the catalogue version given. The routes' part is made once.
pub fn for_version(catalogue_version: &str) -> OpenApi {
    static ROUTES: std::sync::OnceLock<OpenApi> = std::sync::OnceLock::new();
    let mut api = ROUTES.get_or_init(|| crate::http::routes().2).clone();
    api.info.version = catalogue_version.to_owned();
    api
}

/// `GET /api/openapi.json`.
#[utoipa::path(get, path = "/api/openapi.json", tag = "service",
    responses((status = 200, description = "this description", body = serde_json::Value)))]
pub async fn serve(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> axum::Json<OpenApi> {
    axum::Json(for_version(&state.catalogue.version))
}
