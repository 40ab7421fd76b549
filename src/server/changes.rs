//! `/api/v1` for changing routing: revisions, check, compare, publish, restore; the audit log;
//! run-time tokens. The same [`crate::changes::Changes`] the console uses, so a change from CI
//! passes the same gate as one from the browser.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::error::HttpError;
use crate::access::{Principal, Role};
use crate::app::Belroute;
use crate::changes::{COMPARE_WINDOW, ChangeError};
use crate::storage::revisions::Source;

type Answer = Result<HttpResponse, HttpError>;

fn name(req: &HttpRequest) -> &str {
    req.match_info().get("name").unwrap_or_default()
}

/// Adds an audit entry; a database that does not answer is logged, the change stands.
pub async fn audit(
    app: &Belroute,
    who: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    if let Err(e) = app.storage.audit(who, action, target, &detail).await {
        tracing::warn!(
            action,
            target = %belroute_engine::text::escape(target),
            "cannot write the audit log entry (database: {e}); the change itself was made"
        );
    }
}

#[derive(Debug, Deserialize)]
pub struct Limit {
    limit: Option<i64>,
}

/// `GET /api/v1/rulesets/{name}/revisions`: every stored version, newest first.
pub async fn revisions(
    req: HttpRequest,
    state: web::Data<Belroute>,
    query: web::Query<Limit>,
) -> Answer {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let list = state.storage.revisions(name(&req), limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "revisions": list })))
}

/// `GET /api/v1/rulesets/{name}/revisions/{hash}`: one version, with its content.
pub async fn revision(req: HttpRequest, state: web::Data<Belroute>) -> Answer {
    let hash = req.match_info().get("hash").unwrap_or_default();
    match state.storage.revision(name(&req), hash).await? {
        Some(revision) => Ok(HttpResponse::Ok().json(revision)),
        None => Err(HttpError::not_found(format!(
            "no revision {hash} of rule set `{}`; GET /api/v1/rulesets/{}/revisions lists them",
            name(&req),
            name(&req)
        ))),
    }
}

#[derive(Debug, Deserialize)]
pub struct Draft {
    content: String,
}

/// `POST /api/v1/rulesets/{name}/check` `{content}`: what `belroute check` says of it.
pub async fn check(req: HttpRequest, state: web::Data<Belroute>, body: web::Json<Draft>) -> Answer {
    let checked = state.changes.check(name(&req), &body.content).await?;
    Ok(HttpResponse::Ok().json(json!({
        "ok": checked.problems.is_empty(),
        "problems": checked.problems,
        "warnings": checked.warnings,
    })))
}

#[derive(Debug, Deserialize)]
pub struct CompareBody {
    content: String,
    /// RFC 3339, or a duration back from now (`7d`); 7 days when absent.
    since: Option<String>,
}

/// `POST /api/v1/rulesets/{name}/compare` `{content, since}`: the window's logged calls decided
/// by the serving version and by the draft, with their recorded facts.
pub async fn compare(
    req: HttpRequest,
    state: web::Data<Belroute>,
    body: web::Json<CompareBody>,
) -> Answer {
    let now = crate::time::now_ms();
    let since = match &body.since {
        Some(text) => crate::time::since(text, now).map_err(HttpError::bad_request)?,
        None => now - crate::time::millis(COMPARE_WINDOW),
    };
    let checked = state.changes.check(name(&req), &body.content).await?;
    let Some(draft) = checked.set else {
        return Err(ChangeError::Refused(checked.problems).into());
    };
    let summary = state.changes.compare(&draft, since).await?;
    let changes: Vec<_> = summary
        .changes
        .iter()
        .map(|c| {
            json!({
                "from": c.from,
                "to": c.to,
                "count": c.calls,
                "examples": c.examples.iter().map(|e| &e.uuid).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "calls": summary.replayed,
        "changed": summary.changed,
        "changes": changes,
        "serving": state.store.catalog().get(name(&req)).map(|s| s.version.clone()),
        "draft": draft.version,
        "unrecorded": summary.unrecorded,
        "not_compared": summary.not_compared,
        "stopped": summary.stopped,
        "from": summary.from,
        "to": summary.to,
    })))
}

#[derive(Debug, Deserialize)]
pub struct PutBody {
    content: String,
    /// The version the draft started from; `null` for a new rule set.
    base: Option<String>,
    note: String,
}

/// `PUT /api/v1/rulesets/{name}` `{content, base, note}`: publishes a draft; `200 {hash}` once
/// it serves.
pub async fn put(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Json<PutBody>,
) -> Answer {
    let published = state
        .changes
        .publish(
            name(&req),
            &body.content,
            body.base.as_deref(),
            &who,
            Source::Api,
            &body.note,
        )
        .await?;
    Ok(HttpResponse::Ok().json(published))
}

#[derive(Debug, Deserialize)]
pub struct RestoreBody {
    hash: String,
    note: String,
    /// The version the restore replaces; the current one when absent.
    base: Option<String>,
}

/// `POST /api/v1/rulesets/{name}/restore` `{hash, note}`: publishes an earlier revision again.
pub async fn restore(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Json<RestoreBody>,
) -> Answer {
    let name = name(&req);
    let Some(revision) = state.storage.revision(name, &body.hash).await? else {
        return Err(HttpError::not_found(format!(
            "no revision {} of rule set `{name}`",
            body.hash
        )));
    };
    let base = match &body.base {
        Some(base) => Some(base.clone()),
        None => state.changes.current(name)?.map(|(_, version)| version),
    };
    let published = state
        .changes
        .publish(
            name,
            revision.content.as_deref().unwrap_or_default(),
            base.as_deref(),
            &who,
            Source::Restore,
            &body.note,
        )
        .await?;
    Ok(HttpResponse::Ok().json(published))
}

#[derive(Debug, Deserialize)]
pub struct Since {
    since: Option<String>,
    limit: Option<i64>,
}

/// `GET /api/v1/audit?since=…`: every change, oldest first (the last 7 days by default).
pub async fn audit_log(state: web::Data<Belroute>, query: web::Query<Since>) -> Answer {
    let now = crate::time::now_ms();
    let since = match &query.since {
        Some(text) => crate::time::since(text, now).map_err(HttpError::bad_request)?,
        None => now - crate::time::millis(COMPARE_WINDOW),
    };
    let limit = query.limit.unwrap_or(1000).clamp(1, 10_000);
    let entries = state.storage.audit_since(since, limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "entries": entries })))
}

/// `GET /api/v1/tokens`: the run-time tokens (never the tokens themselves).
pub async fn tokens(state: web::Data<Belroute>) -> Answer {
    let list = state.storage.tokens().await?;
    Ok(HttpResponse::Ok().json(json!({ "tokens": list })))
}

#[derive(Debug, Deserialize)]
pub struct NewToken {
    name: String,
    role: String,
}

/// `POST /api/v1/tokens` `{name, role}`: a new token, shown in this answer only.
pub async fn create_token(
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
    body: web::Json<NewToken>,
) -> Answer {
    let role = Role::parse(&body.role).map_err(HttpError::bad_request)?;
    let token = state
        .tokens
        .create(&state.storage, &body.name, role, &who.name)
        .await
        .map_err(|e| match e {
            crate::access::CreateError::Invalid(m) => HttpError::bad_request(m),
            crate::access::CreateError::Write(
                crate::storage::revisions::TokenWriteError::Exists(_),
            ) => HttpError::new(super::error::Kind::Conflict, e.to_string()),
            crate::access::CreateError::Write(
                crate::storage::revisions::TokenWriteError::Database(d),
            ) => HttpError::database(&d),
            crate::access::CreateError::NoRandom(m) => {
                HttpError::new(super::error::Kind::Internal, m)
            }
        })?;
    audit(
        &state,
        &who.name,
        "token.create",
        &body.name,
        json!({ "role": role.as_str() }),
    )
    .await;
    Ok(HttpResponse::Created().json(json!({
        "name": body.name,
        "role": role.as_str(),
        "token": token,
    })))
}

/// `DELETE /api/v1/tokens/{name}`: the token stops working (on every instance within 5 s).
pub async fn delete_token(
    req: HttpRequest,
    state: web::Data<Belroute>,
    who: web::ReqData<Principal>,
) -> Answer {
    let name = name(&req);
    if !state.tokens.delete(&state.storage, name).await? {
        return Err(HttpError::not_found(format!(
            "no token named `{}`; GET /api/v1/tokens lists them",
            belroute_engine::text::escape(name)
        )));
    }
    audit(&state, &who.name, "token.delete", name, json!({})).await;
    Ok(HttpResponse::NoContent().finish())
}
