//! DSSE envelopes (the Dead Simple Signing Envelope of in-toto): a payload,
//! its type, and signatures over the pre-authentication encoding of both.

use anyhow::Result;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::sign::Signer;

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The media type of a DSSE envelope holding an in-toto statement.
pub const MEDIA_TYPE_DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";

/// `PAE(type, body)`: what a DSSE signature signs, so that a signature over
/// one payload type cannot be replayed as another.
pub fn pre_authentication_encoding(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut encoded = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    encoded.extend_from_slice(payload);
    encoded
}

/// The envelope of `payload`, signed by `signer` when there is one (an
/// unsigned envelope has an empty `signatures` list).
pub fn envelope(payload_type: &str, payload: &[u8], signer: Option<&dyn Signer>) -> Result<Value> {
    let signatures = match signer {
        Some(signer) => {
            let signature = signer.sign(&pre_authentication_encoding(payload_type, payload))?;
            let mut entry = json!({ "sig": STANDARD.encode(&signature.bytes) });
            if let Some(key_id) = signature.key_id {
                entry["keyid"] = json!(key_id);
            }
            vec![entry]
        }
        None => Vec::new(),
    };
    Ok(json!({
        "payloadType": payload_type,
        "payload": STANDARD.encode(payload),
        "signatures": signatures,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supply::sign::Signature;

    struct Echo;
    impl Signer for Echo {
        fn sign(&self, message: &[u8]) -> Result<Signature> {
            Ok(Signature {
                bytes: message.to_vec(),
                key_id: Some("k".into()),
            })
        }
    }

    #[test]
    fn pae_matches_the_specification_example() {
        // The example of the DSSE protocol document.
        assert_eq!(
            pre_authentication_encoding("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn envelope_signs_the_encoding_not_the_payload() {
        let signed = envelope("t", b"{}", Some(&Echo)).unwrap();
        assert_eq!(signed["payload"], "e30=");
        let sig = STANDARD
            .decode(signed["signatures"][0]["sig"].as_str().unwrap())
            .unwrap();
        assert_eq!(sig, b"DSSEv1 1 t 2 {}".to_vec());
        assert_eq!(signed["signatures"][0]["keyid"], "k");
        let unsigned = envelope("t", b"{}", None).unwrap();
        assert_eq!(unsigned["signatures"], json!([]));
    }
}
