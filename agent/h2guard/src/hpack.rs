//! One header block, decoded within bounds and re-encoded (RFC 7541).
//!
//! The client's block is decoded with a decoder whose dynamic table may not exceed the
//! advertised size, and the decoded list is counted as it is produced: past the limit nothing
//! more is kept. The result is re-encoded with an encoder whose table the server's decoder
//! mirrors, after the one rewrite this crate makes (an `:authority` the `http` crate refuses
//! becomes `localhost`; on a unix socket the authority means nothing).

use loona_hpack::decoder::DecoderError;

use crate::error::GuardError;
use crate::limits::Limits;

/// RFC 9113 §6.5.2: a field's size is its name and value lengths plus 32.
const FIELD_OVERHEAD: usize = 32;

/// The HPACK state of one connection's client-to-server direction.
pub struct Hpack {
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
    max_header_list: usize,
    max_table: usize,
}

impl Hpack {
    pub fn new(limits: &Limits) -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(limits.max_table);
        Self {
            decoder,
            encoder: loona_hpack::Encoder::new(),
            max_header_list: limits.max_header_list,
            max_table: limits.max_table,
        }
    }

    /// Decodes `block`, applies the authority rewrite and re-encodes it.
    pub fn rewrite(&mut self, block: &[u8]) -> Result<Vec<u8>, GuardError> {
        let mut headers: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut size = 0usize;
        let mut over = false;
        self.decoder
            .decode_with_cb(block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + FIELD_OVERHEAD);
                if size > self.max_header_list {
                    over = true;
                }
                if !over {
                    headers.push((name.into_owned(), value.into_owned()));
                }
            })
            .map_err(|e| match e {
                DecoderError::InvalidMaxDynamicSize => GuardError::TableTooLarge {
                    max: self.max_table,
                },
                _ => GuardError::Compression,
            })?;
        if over {
            return Err(GuardError::HeaderListTooLarge {
                max: self.max_header_list,
            });
        }
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority"
                && http::uri::Authority::try_from(&value[..]).is_err()
            {
                *value = b"localhost".to_vec();
            }
        }
        Ok(self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice()))))
    }
}
