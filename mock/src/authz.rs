//! An OIDC authorization request on its way through the pages (authorize, Nextcloud's login,
//! consent) to a code: what the OIDC app validated and Nextcloud's session parks meanwhile.

/// The parameters of a validated `/authorize` request.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// Empty when a confidential client sent none (Nextcloud's oidc app makes PKCE optional).
    pub code_challenge: String,
    pub resource: Option<String>,
    pub scope: String,
    /// OIDC nonce, echoed in the ID token.
    pub nonce: Option<String>,
}
