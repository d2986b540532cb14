//! `GET /openapi.json`: the OpenAPI 3 description of the API. Written beside
//! the handlers; the tests check that every documented path answers and that
//! the documented properties are exactly the fields the server returns.

use axum::Json;
use serde_json::{Value, json};

pub(crate) async fn openapi() -> Json<Value> {
    Json(document())
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn ok(schema: Value) -> Value {
    json!({"description": "OK", "content": {"application/json": {"schema": schema}}})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema_ref("Error")}}})
}

fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "maxLength": crate::MAX_ID_LEN}})
}

fn cost_get(id: &str, what: &str) -> Value {
    json!({"get": {
        "summary": format!("Cost of a {what} so far"),
        "parameters": [path_param(id)],
        "responses": {
            "200": ok(schema_ref(&format!("{}Cost", capitalise(what)))),
            "401": error("Missing or invalid API key"),
            "404": error(&format!("{} X not found (also for another tenant's {what})", capitalise(what))),
            "422": error("Id too long"),
        }
    }})
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn cost_schema(id: &str) -> Value {
    json!({"type": "object",
    "required": [id, "total_cost_usd", "total_cost_nanos", "period_start", "period_end",
                 "breakdown_by_service", "request_count", "unpriced_count"],
    "properties": {
        id: {"type": "string"},
        "total_cost_usd": {"type": "number", "description": "Priced total; unpriced usage is not in it"},
        "total_cost_nanos": {"type": "integer", "format": "int64"},
        "period_start": {"type": "string", "format": "date-time"},
        "period_end": {"type": "string", "format": "date-time"},
        "breakdown_by_service": {"type": "object", "additionalProperties": {"type": "number"}},
        "request_count": {"type": "integer"},
        "unpriced_count": {"type": "integer", "description": "Usage records without a price"},
    }})
}

/// The whole document.
pub(crate) fn document() -> Value {
    let nullable_string = json!({"type": "string", "nullable": true});
    let ts = json!({"type": "string", "format": "date-time"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "costtrace",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "What every AI call and paid service costs, and for whom. Timestamps are RFC 3339 UTC with milliseconds; errors are {\"detail\": \"...\"}.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
                "ServiceUse": {"type": "object", "required": ["service_type", "cost_usd", "cost_nanos", "breakdown"], "properties": {
                    "service_type": {"type": "string", "description": "service_type, else llm:MODEL, else unknown"},
                    "cost_usd": {"type": "number", "nullable": true},
                    "cost_nanos": {"type": "integer", "format": "int64", "nullable": true},
                    "breakdown": {"type": "object", "additionalProperties": true},
                }},
                "Request": {"type": "object", "required": ["request_id", "timestamp", "services_used", "total_cost_usd"], "properties": {
                    "request_id": {"type": "string"},
                    "task_id": nullable_string, "doc_id": nullable_string, "entity_id": nullable_string,
                    "operation_type": nullable_string, "task_type": nullable_string,
                    "endpoint": nullable_string, "method": nullable_string,
                    "status_code": {"type": "integer", "nullable": true},
                    "timestamp": ts,
                    "processing_time_ms": {"type": "number", "nullable": true},
                    "error_message": nullable_string,
                    "services_used": {"type": "array", "items": schema_ref("ServiceUse")},
                    "total_cost_usd": {"type": "number"},
                    "total_cost_nanos": {"type": "integer", "format": "int64"},
                    "unpriced_count": {"type": "integer"},
                }},
                "RequestList": {"type": "object", "required": ["requests", "total"], "properties": {
                    "requests": {"type": "array", "items": schema_ref("Request")},
                    "total": {"type": "integer"},
                }},
                "TaskCost": cost_schema("task_id"),
                "DocCost": cost_schema("doc_id"),
                "EntityCost": cost_schema("entity_id"),
                "SummaryGroup": {"type": "object", "properties": {
                    "key": {"type": "string"},
                    "total_cost_usd": {"type": "number"},
                    "total_cost_nanos": {"type": "integer", "format": "int64"},
                    "unpriced_count": {"type": "integer"},
                    "record_count": {"type": "integer"},
                }},
                "UsageSummary": {"type": "object", "properties": {
                    "group_by": {"type": "string", "enum": ["model", "provider", "service_type", "entity_id", "task_id", "doc_id", "day", "hour"]},
                    "from": {"type": "string", "format": "date-time", "nullable": true},
                    "to": {"type": "string", "format": "date-time", "nullable": true},
                    "groups": {"type": "array", "items": schema_ref("SummaryGroup")},
                    "total_cost_usd": {"type": "number"},
                    "total_cost_nanos": {"type": "integer", "format": "int64"},
                    "unpriced_count": {"type": "integer"},
                    "record_count": {"type": "integer"},
                }},
                "IngestResult": {"type": "object", "required": ["accepted", "inserted", "rejected"], "properties": {
                    "accepted": {"type": "integer", "description": "Valid records (stored or already there)"},
                    "inserted": {"type": "integer", "description": "Records that were new"},
                    "rejected": {"type": "array", "items": {"type": "object", "properties": {
                        "index": {"type": "integer"}, "reason": {"type": "string"}}}},
                    "detail": {"type": "string", "description": "Only when nothing was valid (422)"},
                }},
                "Health": {"type": "object", "properties": {
                    "status": {"type": "string"}, "backend": {"type": "string"},
                    "auth": {"type": "string", "enum": ["local", "keys"]},
                    "catalogue_version": {"type": "string"},
                }},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/requests": {"get": {
                "summary": "Requests, newest first, with their services and cost",
                "parameters": [
                    query("task_id", json!({"type": "string"}), "Requests of this task"),
                    query("doc_id", json!({"type": "string"}), "Requests of this document"),
                    query("entity_id", json!({"type": "string"}), "Requests of this entity"),
                    query("task_type", json!({"type": "string"}), "e.g. upload"),
                    query("operation_type", json!({"type": "string"}), "e.g. file_upload"),
                    query("status_code", json!({"type": "integer"}), "Final HTTP status"),
                    query("from", ts.clone(), "At or after (RFC 3339)"),
                    query("to", ts.clone(), "Before (RFC 3339)"),
                    query("page", json!({"type": "integer", "minimum": 1, "default": 1}), "1-based page"),
                    query("page_size", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}), "Rows per page"),
                ],
                "responses": {"200": ok(schema_ref("RequestList")), "401": error("Missing or invalid API key"), "422": error("A parameter is out of range")},
            }},
            "/api/requests/{request_id}": {"get": {
                "summary": "One request",
                "parameters": [path_param("request_id")],
                "responses": {"200": ok(schema_ref("Request")), "401": error("Missing or invalid API key"),
                              "404": error("Request X not found (also for another tenant's request)"), "422": error("Id too long")},
            }},
            "/api/tasks/{task_id}/cost": cost_get("task_id", "task"),
            "/api/docs/{doc_id}/cost": cost_get("doc_id", "doc"),
            "/api/entities/{entity_id}/cost": cost_get("entity_id", "entity"),
            "/api/usage/summary": {"get": {
                "summary": "Spend grouped by model, provider, service type, entity or day",
                "parameters": [
                    query("group_by", json!({"type": "string", "enum": ["model", "provider", "service_type", "entity_id", "task_id", "doc_id", "day", "hour"], "default": "model"}), "Grouping"),
                    query("from", ts.clone(), "At or after (RFC 3339)"),
                    query("to", ts.clone(), "Before (RFC 3339)"),
                ],
                "responses": {"200": ok(schema_ref("UsageSummary")), "401": error("Missing or invalid API key"), "422": error("Unknown group_by or bad time")},
            }},
            "/api/ingest": {"post": {
                "summary": "Store scope, usage and request records (JSON array, wire format of costtrace-core)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "array", "maxItems": crate::MAX_BATCH, "items": {"type": "object"}}}}},
                "responses": {
                    "200": ok(schema_ref("IngestResult")),
                    "400": error("Malformed JSON or not an array"),
                    "401": error("Missing or invalid API key"),
                    "413": error("Body or batch too large"),
                    "422": {"description": "No record was valid", "content": {"application/json": {"schema": schema_ref("IngestResult")}}},
                },
            }},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": ok(schema_ref("Health"))}}},
            "/metrics": {"get": {"summary": "Prometheus text", "security": [], "responses": {"200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
    })
}
