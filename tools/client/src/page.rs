//! A page of a list: `{ "items": [...], "next_cursor": ... }`.

use serde::{Deserialize, Serialize};

/// One page of a list answer; `next_cursor` asks for the next one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page, newest first.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last one.
    #[serde(default)]
    pub next_cursor: Option<String>,
}
