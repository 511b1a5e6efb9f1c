//! `GET /api/openapi.json`: an OpenAPI 3.1 description of the HTTP API, written by hand next to
//! the routes ([`ROUTES`] lists what the router serves; a test checks the two agree and that
//! every described route answers).

use serde_json::{Value, json};

/// Every route the router serves: (method, path in OpenAPI's `{param}` form).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/wall"),
    ("get", "/analyst"),
    ("get", "/planner"),
    ("get", "/pages/common.js"),
    ("get", "/api/health"),
    ("get", "/api/openapi.json"),
    ("get", "/api/indicators"),
    ("get", "/api/indicators/{id}"),
    ("get", "/api/indicators/{id}/values"),
    ("get", "/api/indicators/{id}/series"),
    ("get", "/api/indicators/{id}/breakdown"),
    ("get", "/api/alerts"),
    ("get", "/api/trends"),
    ("post", "/api/sql"),
    ("get", "/api/scenes"),
    ("get", "/api/scenes/{id}/snapshot.png"),
    ("get", "/ws/view"),
];

fn param(name: &str, location: &str, description: &str, required: bool) -> Value {
    json!({ "name": name, "in": location, "required": required,
            "description": description, "schema": { "type": "string" } })
}

fn query(name: &str, description: &str) -> Value {
    param(name, "query", description, false)
}

fn id() -> Value {
    param("id", "path", "indicator or scene id", true)
}

fn ok(description: &str, content_type: &str) -> Value {
    json!({
        "200": { "description": description, "content": { content_type: {} } },
        "400": { "description": "a bad parameter, named in the JSON body" },
        "401": { "description": "no token, or an unknown one" },
        "403": { "description": "outside the token's role or region scope" },
        "429": { "description": "too many requests for this token" },
    })
}

fn operation(summary: &str, parameters: Vec<Value>, responses: Value) -> Value {
    json!({ "summary": summary, "parameters": parameters, "responses": responses,
            "security": [{ "bearer": [] }] })
}

/// The description, for the catalogue version given.
pub fn document(catalogue_version: &str) -> Value {
    let level = query(
        "level",
        "province, city, county, township, community or grid",
    );
    let grain = query("grain", "day, week, month, quarter or year");
    let region = query(
        "region",
        "a division code, e.g. 3201; defaults to the token's scope",
    );
    let from = query(
        "from",
        "first period, inclusive: 2024, 2024-Q3, 2024-07, 2024-W27, 2024-07-15",
    );
    let to = query("to", "last period, inclusive");
    let mut paths = serde_json::Map::new();
    let mut add = |path: &str, method: &str, op: Value| {
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op;
    };
    add(
        "/",
        "get",
        json!({ "summary": "the start page (with ?token= for data)",
        "responses": { "200": { "description": "HTML", "content": { "text/html": {} } } } }),
    );
    for (path, summary) in [
        ("/wall", "the command-centre wall (?scene=&token=)"),
        ("/analyst", "the analyst page (?token=)"),
        ("/planner", "the planner page (?scene=&token=)"),
        ("/pages/common.js", "the pages' shared script"),
    ] {
        add(
            path,
            "get",
            json!({ "summary": summary, "responses": { "200": { "description": "the page" } } }),
        );
    }
    add(
        "/api/health",
        "get",
        json!({ "summary": "status, rendering, data snapshot, catalogue version",
        "responses": { "200": { "description": "health", "content": { "application/json": {} } } } }),
    );
    add(
        "/api/openapi.json",
        "get",
        json!({ "summary": "this description",
        "responses": { "200": { "description": "OpenAPI", "content": { "application/json": {} } } } }),
    );
    add(
        "/api/indicators",
        "get",
        operation(
            "the indicator catalogue",
            vec![],
            ok("the catalogue", "application/json"),
        ),
    );
    add(
        "/api/indicators/{id}",
        "get",
        operation(
            "one indicator's definition",
            vec![id()],
            ok("the definition", "application/json"),
        ),
    );
    add(
        "/api/indicators/{id}/values",
        "get",
        operation(
            "values per region and period (small cells withheld below analyst)",
            vec![
                id(),
                level.clone(),
                grain.clone(),
                from.clone(),
                to.clone(),
                region.clone(),
                query("format", "json (default), csv or sdmx-csv"),
            ],
            ok("rows", "application/json"),
        ),
    );
    add(
        "/api/indicators/{id}/series",
        "get",
        operation(
            "one region's values over time",
            vec![id(), region.clone(), grain.clone(), from, to],
            ok("points", "application/json"),
        ),
    );
    add(
        "/api/indicators/{id}/breakdown",
        "get",
        operation(
            "one period split by a text column, largest first",
            vec![
                id(),
                query("by", "a text column, e.g. content_code"),
                grain.clone(),
                query("period", "the period"),
                region.clone(),
                query("top", "how many, 1..=1000"),
            ],
            ok("shares", "application/json"),
        ),
    );
    add(
        "/api/alerts",
        "get",
        operation(
            "threshold breaches and anomalies",
            vec![
                level,
                grain,
                query("period", "the period"),
                region.clone(),
                query("indicator", "an indicator id"),
                query("min_support", "records needed"),
                query("severity", "critical or warning"),
            ],
            ok("alerts", "application/json"),
        ),
    );
    add(
        "/api/trends",
        "get",
        operation(
            "progress towards the 2025 targets",
            vec![
                region,
                query("as_of", "YYYY-MM-DD"),
                query("indicator", "an indicator id"),
            ],
            ok("trends", "application/json"),
        ),
    );
    let mut sql = operation(
        "one read-only SQL query (analysts and admins, province scope)",
        vec![],
        ok("columns and rows", "application/json"),
    );
    sql["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": {
        "type": "object", "required": ["sql"],
        "properties": { "sql": { "type": "string" }, "max_rows": { "type": "integer", "minimum": 1, "maximum": 10000 } } } } } });
    add("/api/sql", "post", sql);
    add(
        "/api/scenes",
        "get",
        operation("the scenes", vec![], ok("scenes", "application/json")),
    );
    add(
        "/api/scenes/{id}/snapshot.png",
        "get",
        operation(
            "a rendered PNG of a scene",
            vec![
                id(),
                query("width", "16..=4096"),
                query("height", "16..=4096"),
            ],
            ok("PNG", "image/png"),
        ),
    );
    add(
        "/ws/view",
        "get",
        operation(
            "the view stream (WebSocket; see the README for messages)",
            vec![
                query("scene", "scene id"),
                query("width", "pixels"),
                query("height", "pixels"),
                query("fps", "0.5..=30"),
                query("spin", "degrees per second"),
                query("quality", "JPEG 10..=100"),
            ],
            json!({ "101": { "description": "switching to WebSocket" },
                "401": { "description": "no token" }, "403": { "description": "outside the scope" } }),
        ),
    );
    json!({
        "openapi": "3.1.0",
        "info": { "title": "databrain 数据大脑", "version": catalogue_version,
                  "description": "Indicators, alerts, trends and the streamed city twin of the Jiangsu data brain." },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "paths": paths,
    })
}

/// `GET /api/openapi.json`.
pub async fn serve(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
) -> axum::Json<Value> {
    axum::Json(document(&state.catalogue.version))
}
