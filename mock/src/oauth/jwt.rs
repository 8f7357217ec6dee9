//! RS256 JWTs by hand, as Nextcloud's oidc app signs them:
//! `base64url(header).base64url(claims).base64url(signature)`, and the JWKS (`kty: RSA`) that
//! publishes the public key. Access tokens and ID tokens share the one key.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{self, KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

/// Claims of our access tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    /// The client id and the resource the token is for (RFC 8707), a string when there is one.
    #[serde(serialize_with = "audience_out", deserialize_with = "audience_in")]
    pub aud: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
}

/// Claims of an OpenID Connect ID token (Core §2): `aud` is the client alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: u64,
    pub iat: u64,
    pub auth_time: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub preferred_username: String,
}

/// One audience is written as a string, several as an array (RFC 7519 §4.1.3).
fn audience_out<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

fn audience_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(a) => vec![a],
        Aud::Many(a) => a,
    })
}

/// The `aud` value as introspection shows it: a string for one audience, else an array.
pub fn audience_json(aud: &[String]) -> Value {
    match aud {
        [one] => json!(one),
        many => json!(many),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported algorithm or key id")]
    Header,
    #[error("bad signature")]
    Signature,
}

/// The process's one RSA key. Generating a 2048-bit key costs tens to hundreds of
/// milliseconds (more in debug builds), and tests start dozens of mocks in one process, so
/// every mock of a process signs with the same key under its own `kid`.
fn shared_key() -> Option<Arc<KeyPair>> {
    static KEY: OnceLock<Option<Arc<KeyPair>>> = OnceLock::new();
    KEY.get_or_init(|| KeyPair::generate(KeySize::Rsa2048).ok().map(Arc::new))
        .clone()
}

/// The server's signing key (see [`shared_key`]) and its key id.
pub struct Keys {
    key: Arc<KeyPair>,
    kid: String,
}

impl Keys {
    /// Fails only if the crypto library cannot make an RSA key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = shared_key().ok_or_else(|| anyhow::anyhow!("cannot generate an RSA key"))?;
        let kid = format!("mock-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Ok(Self { key, kid })
    }

    /// Signs any claims set; serializing our claim structs (strings, integers) cannot fail.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        let header = json!({ "alg": "RS256", "typ": "JWT", "kid": self.kid });
        let mut token = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        // RSA PKCS#1 v1.5 signing with a valid key and a right-sized buffer does not fail;
        // if it ever did, the zero signature fails verification everywhere.
        if self
            .key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                token.as_bytes(),
                &mut sig,
            )
            .is_err()
        {
            tracing::error!("RS256 signing failed");
        }
        token.push('.');
        token.push_str(&B64.encode(sig));
        token
    }

    /// Checks the header and signature and returns the claims; expiry and audience are the
    /// caller's business.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_as(token)
    }

    /// [`Keys::verify`] for any claims type (ID tokens in tests).
    pub fn verify_as<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        let (signed, s) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let claims = self.decode_as(token)?;
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public_key().as_ref(),
        )
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| JwtError::Signature)?;
        Ok(claims)
    }

    /// Checks the shape and header and returns the claims WITHOUT checking the signature: only
    /// for a token the caller proves otherwise to be one we issued (see `verify_access`).
    pub fn decode(&self, token: &str) -> Result<Claims, JwtError> {
        self.decode_as(token)
    }

    fn decode_as<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value =
            serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
                .map_err(|_| JwtError::Malformed)?;
        if header["alg"] != "RS256" || header["kid"] != self.kid.as_str() {
            return Err(JwtError::Header);
        }
        serde_json::from_slice(&B64.decode(c).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)
    }

    pub fn jwks(&self) -> Value {
        let public = PublicKeyComponents::<Vec<u8>>::from(self.key.public_key());
        json!({ "keys": [{
            "kty": "RSA",
            "n": B64.encode(&public.n),
            "e": B64.encode(&public.e),
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
        }]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            iss: "http://x".into(),
            sub: "alice".into(),
            aud: vec!["c".into(), "http://x/mcp".into()],
            exp: 10,
            iat: 1,
            jti: "j".into(),
            scope: "mcp:tools".into(),
            client_id: "c".into(),
        }
    }

    fn new_keys() -> Keys {
        Keys::generate().expect("an RSA key")
    }

    #[test]
    fn sign_verify_and_tamper() {
        let keys = new_keys();
        let token = keys.sign(&claims());
        assert_eq!(keys.verify(&token), Ok(claims()));
        let check = |t: &str, expected: JwtError| assert_eq!(keys.verify(t), Err(expected), "{t}");
        let (head, sig) = token.rsplit_once('.').unwrap_or_default();
        let mut forged = claims();
        forged.sub = "bob".into();
        let other = new_keys().sign(&forged);
        let forged_payload = other.split('.').nth(1).unwrap_or_default();
        let h = head.split('.').next().unwrap_or_default();
        check(&format!("{h}.{forged_payload}.{sig}"), JwtError::Signature);
        check(&other, JwtError::Header);
        check("a.b", JwtError::Malformed);
        // decode reads a forged token's claims; only verify catches the forgery.
        let forged_token = format!("{h}.{forged_payload}.{sig}");
        assert_eq!(keys.decode(&forged_token).map(|c| c.sub), Ok("bob".into()));
        check(&forged_token, JwtError::Signature);
        let jwk = &keys.jwks()["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["e"].as_str()),
            (Some("RSA"), Some("AQAB"))
        );
    }

    #[test]
    fn one_audience_is_a_string_and_reads_back() {
        let mut c = claims();
        c.aud = vec!["only".into()];
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["aud"], "only");
        let back: Claims = serde_json::from_value(v).expect("claims");
        assert_eq!(back.aud, vec!["only".to_owned()]);
    }
}
