//! The real server's `tools/list` entries (nextcloud-mcp-server 0.202.1, committed as
//! `mock/tests/data/nextcloud-mcp-server-0.202.1-tools.json`): the mock serves their titles,
//! descriptions, annotations, input and output schemas verbatim, so a client sees the same
//! contract; the Rust argument types only decide what a call accepts (tests hold the two equal).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ToolAnnotations;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The real server's entries for the tools the mock offers.
pub const REAL_TOOLS_JSON: &str =
    include_str!("../../tests/data/nextcloud-mcp-server-0.202.1-tools.json");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the embedded tools/list is not valid: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("the real server has no tool {0}")]
    Unknown(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RealTool {
    name: String,
    title: Option<String>,
    description: Option<String>,
    input_schema: Map<String, Value>,
    output_schema: Option<Map<String, Value>>,
    annotations: Option<ToolAnnotations>,
}

/// Replaces each routed tool's metadata by the real server's; fails on a tool it does not know.
pub fn apply<S>(router: &mut ToolRouter<S>) -> Result<(), CatalogError> {
    let real: Vec<RealTool> = serde_json::from_str(REAL_TOOLS_JSON)?;
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        let entry = real
            .iter()
            .find(|r| r.name == tool.name)
            .ok_or_else(|| CatalogError::Unknown(tool.name.to_string()))?;
        tool.title.clone_from(&entry.title);
        tool.description = entry.description.clone().map(Into::into);
        tool.input_schema = Arc::new(entry.input_schema.clone());
        tool.output_schema = entry.output_schema.clone().map(Arc::new);
        tool.annotations.clone_from(&entry.annotations);
    }
    Ok(())
}
