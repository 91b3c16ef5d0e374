//! What the client and the service share: a UTF-8 text message.
use bytes::Bytes;
use flame_rs::apis::FlameError;
use flame_rs::FlameMessage;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text(pub String);

impl FlameMessage for Text {
    fn encode(&self) -> Result<Bytes, FlameError> {
        Ok(Bytes::from(self.0.clone()))
    }

    fn decode(bytes: &[u8]) -> Result<Self, FlameError> {
        String::from_utf8(bytes.to_vec())
            .map(Text)
            .map_err(|e| FlameError::InvalidConfig(format!("not UTF-8: {e}")))
    }
}
