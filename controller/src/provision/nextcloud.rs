//! Nextcloud's OCS provisioning API (`/ocs/v2.php/cloud/users`), which the
//! mock target answers too: the `nextcloud` and `embedded` providers.

use std::time::Duration;

use common::Secret;
use common::ids::UserName;
use reqwest::StatusCode;
use serde::Deserialize;

use super::{ProvisionError, TestUser, UserProvider};

/// Where the OCS provisioning API keeps users, under the Nextcloud base URL.
pub const OCS_USERS_PATH: &str = "/ocs/v2.php/cloud/users";
/// And groups (the tenants of `--tenants`).
pub const OCS_GROUPS_PATH: &str = "/ocs/v2.php/cloud/groups";
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// OCS status code of "user already exists" on user creation.
const OCS_USER_EXISTS: u64 = 102;

pub struct OcsProvider {
    http: reqwest::Client,
    /// `{base}/ocs/v2.php/cloud/users`
    users_url: String,
    /// `{base}/ocs/v2.php/cloud/groups`
    groups_url: String,
    admin_user: String,
    admin_password: Secret,
}

#[derive(Deserialize)]
struct OcsEnvelope<T> {
    ocs: Ocs<T>,
}

#[derive(Deserialize)]
struct Ocs<T> {
    meta: OcsMeta,
    data: Option<T>,
}

#[derive(Deserialize)]
struct OcsMeta {
    #[serde(default)]
    statuscode: u64,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct UsersData {
    #[serde(default)]
    users: Vec<String>,
}

impl OcsProvider {
    pub fn new(
        base_url: &url::Url,
        admin_user: String,
        admin_password: Secret,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(ADMIN_TIMEOUT).build()?;
        Ok(OcsProvider {
            http,
            users_url: format!(
                "{}{OCS_USERS_PATH}",
                base_url.as_str().trim_end_matches('/')
            ),
            groups_url: format!(
                "{}{OCS_GROUPS_PATH}",
                base_url.as_str().trim_end_matches('/')
            ),
            admin_user,
            admin_password,
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(&self.admin_user, Some(self.admin_password.expose()))
            .header("OCS-APIRequest", "true")
            .header("Accept", "application/json")
    }

    /// Reads an OCS answer: HTTP status and `ocs.meta.statuscode`.
    async fn answer<T: for<'de> Deserialize<'de>>(
        op: &'static str,
        user: &str,
        resp: reqwest::Response,
    ) -> Result<(u64, Option<T>), ProvisionError> {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(ProvisionError::Unauthorized {
                status: status.as_u16(),
            });
        }
        let body = resp.text().await.map_err(|source| ProvisionError::Http {
            op,
            user: user.to_owned(),
            source,
        })?;
        match serde_json::from_str::<OcsEnvelope<T>>(&body) {
            Ok(env) => {
                let code = env.ocs.meta.statuscode;
                let ok = status.is_success() && matches!(code, 100 | 200);
                if ok {
                    Ok((code, env.ocs.data))
                } else if code == OCS_USER_EXISTS {
                    Ok((code, None))
                } else {
                    Err(ProvisionError::Rejected {
                        op,
                        user: user.to_owned(),
                        status: status.as_u16(),
                        message: format!(
                            "OCS status {code}{}",
                            env.ocs
                                .meta
                                .message
                                .filter(|m| !m.is_empty())
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    })
                }
            }
            Err(_) => Err(ProvisionError::Rejected {
                op,
                user: user.to_owned(),
                status: status.as_u16(),
                message: format!("not an OCS JSON answer: {}", truncate(&body, 200)),
            }),
        }
    }
}

impl OcsProvider {
    /// Creates a group; one that exists already (an earlier run's) is reused.
    pub async fn create_group(&self, name: &str) -> Result<(), ProvisionError> {
        let resp = self
            .request(reqwest::Method::POST, &self.groups_url)
            .form(&[("groupid", name)])
            .send()
            .await
            .map_err(|source| ProvisionError::Http {
                op: "create group",
                user: name.to_owned(),
                source,
            })?;
        Self::answer::<serde_json::Value>("create group", name, resp)
            .await
            .map(|_| ())
    }

    pub async fn delete_group(&self, name: &str) -> Result<(), ProvisionError> {
        let url = format!("{}/{name}", self.groups_url);
        let resp = self
            .request(reqwest::Method::DELETE, &url)
            .send()
            .await
            .map_err(|source| ProvisionError::Http {
                op: "delete group",
                user: name.to_owned(),
                source,
            })?;
        Self::answer::<serde_json::Value>("delete group", name, resp)
            .await
            .map(|_| ())
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl UserProvider for OcsProvider {
    async fn create(&self, user: &TestUser) -> Result<(), ProvisionError> {
        let name = user.name.as_str();
        let mut form = vec![
            ("userid", name),
            ("password", user.password.expose()),
            ("displayName", user.display_name.as_str()),
            ("email", user.email.as_str()),
        ];
        if let Some(tenant) = &user.tenant {
            form.push(("groups[]", tenant.as_str()));
        }
        let resp = self
            .request(reqwest::Method::POST, &self.users_url)
            .form(&form)
            .send()
            .await
            .map_err(|source| ProvisionError::Http {
                op: "create user",
                user: name.to_owned(),
                source,
            })?;
        let (code, _) = Self::answer::<serde_json::Value>("create user", name, resp).await?;
        if code == OCS_USER_EXISTS {
            let prefix = name.rsplit_once("_user_").map(|(p, _)| p).unwrap_or(name);
            return Err(ProvisionError::AlreadyExists {
                user: name.to_owned(),
                prefix: prefix.to_owned(),
            });
        }
        Ok(())
    }

    async fn delete(&self, name: &UserName) -> Result<(), ProvisionError> {
        let url = format!("{}/{}", self.users_url, name.as_str());
        let resp = self
            .request(reqwest::Method::DELETE, &url)
            .send()
            .await
            .map_err(|source| ProvisionError::Http {
                op: "delete user",
                user: name.to_string(),
                source,
            })?;
        if resp.status() == StatusCode::NOT_FOUND {
            // Already gone: what we wanted.
            return Ok(());
        }
        Self::answer::<serde_json::Value>("delete user", name.as_str(), resp)
            .await
            .map(|_| ())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<UserName>, ProvisionError> {
        let resp = self
            .request(reqwest::Method::GET, &self.users_url)
            .query(&[("search", prefix)])
            .send()
            .await
            .map_err(|source| ProvisionError::Http {
                op: "list users",
                user: format!("{prefix}*"),
                source,
            })?;
        let (_, data) = Self::answer::<UsersData>("list users", prefix, resp).await?;
        Ok(data
            .map(|d| d.users)
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.starts_with(prefix))
            .map(UserName::new)
            .collect())
    }

    fn manages_users(&self) -> bool {
        true
    }

    fn location(&self) -> String {
        self.users_url.clone()
    }
}
