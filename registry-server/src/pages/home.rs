//! `GET /`: the registry's name, totals, recent and most pulled containers,
//! all counted over what the caller may see.

use axum::extract::State;
use axum::response::Response;

use super::catalog::{containers_by, stats, totals};
use super::session::Visitor;
use super::{PageError, render};
use crate::http::api::collections::visible_collections;
use crate::serve::AppState;

const LIST_LEN: usize = 10;

pub async fn home(State(state): State<AppState>, v: Visitor) -> Result<Response, PageError> {
    let db = &state.db.pool;
    let visible = visible_collections(&state, &v.caller).await?;
    let totals = totals(&visible, &stats(db, None).await?);
    let recent = containers_by(db, &visible, "k.updated_at DESC", false, LIST_LEN).await?;
    let popular = containers_by(db, &visible, "k.downloads DESC", true, LIST_LEN).await?;
    render(
        &state,
        &v,
        "home",
        "Home",
        serde_json::json!({ "totals": totals, "recent": recent, "popular": popular }),
    )
}
