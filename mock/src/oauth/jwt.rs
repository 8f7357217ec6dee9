//! EdDSA (Ed25519) JWTs by hand: `base64url(header).base64url(claims).base64url(signature)`,
//! and the JWKS that publishes the public key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Claims of our access tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
    pub scope: String,
    pub client_id: String,
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

/// The server's signing key, generated at start.
pub struct Keys {
    signing: SigningKey,
    verifying: VerifyingKey,
    kid: String,
}

impl Keys {
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        let signing = SigningKey::from_bytes(&seed);
        let verifying = signing.verifying_key();
        let kid = format!("mock-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        Self {
            signing,
            verifying,
            kid,
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let mut token = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            // Serializing a struct of strings and integers cannot fail.
            B64.encode(serde_json::to_vec(claims).unwrap_or_default())
        );
        let signature = self.signing.sign(token.as_bytes());
        token.push('.');
        token.push_str(&B64.encode(signature.to_bytes()));
        token
    }

    /// Checks the header and signature and returns the claims; expiry and audience are the
    /// caller's business.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let (signed, s) = token.rsplit_once('.').ok_or(JwtError::Malformed)?;
        let claims = self.decode(token)?;
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let sig = Signature::from_slice(&sig).map_err(|_| JwtError::Malformed)?;
        self.verifying
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        Ok(claims)
    }

    /// Checks the shape and header and returns the claims WITHOUT checking the signature: only
    /// for a token the caller proves otherwise to be one we issued (see `verify_access`).
    pub fn decode(&self, token: &str) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value =
            serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
                .map_err(|_| JwtError::Malformed)?;
        if header["alg"] != "EdDSA" || header["kid"] != self.kid.as_str() {
            return Err(JwtError::Header);
        }
        serde_json::from_slice(&B64.decode(c).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)
    }

    pub fn jwks(&self) -> Value {
        json!({ "keys": [{
            "kty": "OKP",
            "crv": "Ed25519",
            "x": B64.encode(self.verifying.to_bytes()),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
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
            aud: "http://x/mcp".into(),
            exp: 10,
            iat: 1,
            jti: "j".into(),
            scope: "mcp:tools".into(),
            client_id: "c".into(),
        }
    }

    #[test]
    fn sign_verify_and_tamper() {
        let keys = Keys::generate();
        let token = keys.sign(&claims());
        assert_eq!(keys.verify(&token), Ok(claims()));
        let check = |t: &str, expected: JwtError| assert_eq!(keys.verify(t), Err(expected), "{t}");
        let (head, sig) = token.rsplit_once('.').unwrap_or_default();
        let mut forged = claims();
        forged.sub = "bob".into();
        let other = Keys::generate().sign(&forged);
        let forged_payload = other.split('.').nth(1).unwrap_or_default();
        let h = head.split('.').next().unwrap_or_default();
        check(&format!("{h}.{forged_payload}.{sig}"), JwtError::Signature);
        check(&other, JwtError::Header);
        check("a.b", JwtError::Malformed);
        // decode reads a forged token's claims; only verify catches the forgery.
        let forged_token = format!("{h}.{forged_payload}.{sig}");
        assert_eq!(keys.decode(&forged_token).map(|c| c.sub), Ok("bob".into()));
        check(&forged_token, JwtError::Signature);
        assert_eq!(keys.jwks()["keys"][0]["kty"], "OKP");
    }
}
