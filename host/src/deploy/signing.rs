//! Signed plugins: with trusted ed25519 public keys configured, an upload must
//! carry a signature (hex, `x-mercato-signature`) over its exact bytes by one of
//! them. Without trusted keys, uploads are accepted unsigned.
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Why a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// Keys are configured and the upload has no signature.
    #[error(
        "this host only accepts signed plugins; sign the component and send x-mercato-signature"
    )]
    Missing,
    /// The signature does not verify against any trusted key.
    #[error("the signature does not match the component under any trusted key")]
    Invalid,
    /// A configured key is not 32 bytes of hex.
    #[error("trusted key `{0}` is not a hex ed25519 public key")]
    BadKey(String),
}

/// Parses configured keys (hex, 32 bytes each).
pub fn parse_keys(keys: &[String]) -> Result<Vec<VerifyingKey>, SignatureError> {
    keys.iter()
        .map(|k| {
            let bytes: [u8; 32] = hex::decode(k.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| SignatureError::BadKey(k.clone()))?;
            VerifyingKey::from_bytes(&bytes).map_err(|_| SignatureError::BadKey(k.clone()))
        })
        .collect()
}

/// Checks `signature` over `bytes` when any key is trusted.
pub fn verify(
    trusted: &[VerifyingKey],
    bytes: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    if trusted.is_empty() {
        return Ok(());
    }
    let signature = signature.ok_or(SignatureError::Missing)?;
    let raw: [u8; 64] = hex::decode(signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(SignatureError::Invalid)?;
    let signature = Signature::from_bytes(&raw);
    if trusted
        .iter()
        .any(|key| key.verify_strict(bytes, &signature).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

/// Signs `bytes` with a hex secret key; returns the hex signature.
pub fn sign(secret_hex: &str, bytes: &[u8]) -> Result<String, String> {
    let secret: [u8; 32] = hex::decode(secret_hex.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("the signing key must be 32 bytes of hex (see `mercato keygen`)")?;
    Ok(hex::encode(
        SigningKey::from_bytes(&secret).sign(bytes).to_bytes(),
    ))
}

/// A new key pair as (secret hex, public hex).
pub fn generate() -> Result<(String, String), String> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
    let key = SigningKey::from_bytes(&secret);
    Ok((
        hex::encode(secret),
        hex::encode(key.verifying_key().to_bytes()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_signature_over_the_exact_bytes_verifies() {
        let (secret, public) = generate().unwrap();
        let (other_secret, _) = generate().unwrap();
        let keys = parse_keys(&[public]).unwrap();
        let signature = sign(&secret, b"component").unwrap();
        assert_eq!(verify(&keys, b"component", Some(&signature)), Ok(()));
        assert_eq!(
            verify(&keys, b"component!", Some(&signature)),
            Err(SignatureError::Invalid)
        );
        let forged = sign(&other_secret, b"component").unwrap();
        assert_eq!(
            verify(&keys, b"component", Some(&forged)),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(&keys, b"component", None),
            Err(SignatureError::Missing)
        );
        assert_eq!(verify(&[], b"anything", None), Ok(()));
    }

    #[test]
    fn malformed_keys_are_reported() {
        assert!(matches!(
            parse_keys(&["abc".into()]),
            Err(SignatureError::BadKey(_))
        ));
    }
}
