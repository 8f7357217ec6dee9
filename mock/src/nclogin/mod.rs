//! Nextcloud's own login surface: browser sessions, the login page and its POST, Login Flow
//! v2 and app password revocation. The oidc app's authorize and consent steps (in `oauth/`)
//! read the sessions kept here, as the app reads Nextcloud's user session.

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::App;

pub mod app_password;
pub mod flow_v2;
pub mod login;
pub mod page;
pub mod session;

/// Which login and consent pages `/authorize` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoginPages {
    /// As Nextcloud serves them: rendered by script, no `<form>` in the HTML, the request
    /// token in `<head data-requesttoken>`, login at `POST /index.php/login`, the oidc app's
    /// consent page and `POST …/consent/grant`.
    #[default]
    Nextcloud,
    /// The mock's plain HTML forms (`POST /login`, `POST /consent`), with `--consent` and
    /// `--consent-label`.
    Forms,
}

impl std::str::FromStr for LoginPages {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nextcloud" => Ok(LoginPages::Nextcloud),
            "forms" => Ok(LoginPages::Forms),
            _ => Err(format!("unknown login pages {s:?}: use nextcloud or forms")),
        }
    }
}

pub fn router(app: Arc<App>) -> Router {
    let mut router = Router::new()
        .route(login::LOGIN_PATH, get(login::show).post(login::try_login))
        .route("/ocs/{api}/core/apppassword", delete(app_password::delete));
    // Nextcloud links Login Flow v2 with and without /index.php.
    for base in ["/index.php/login/v2", "/login/v2"] {
        router = router
            .route(base, post(flow_v2::init))
            .route(&format!("{base}/poll"), post(flow_v2::poll))
            .route(&format!("{base}/flow/{{token}}"), get(flow_v2::landing))
            .route(&format!("{base}/flow"), get(flow_v2::picker))
            .route(
                &format!("{base}/grant"),
                get(flow_v2::grant_page).post(flow_v2::grant),
            );
    }
    router.with_state(app)
}
