//! Certificate serial numbers in the one encoding sworn stores, compares, audits and prints
//! (docs/architecture.md, "The CA").
//!
//! RFC 5280 §4.1.2.2: a serial is a positive INTEGER of at most 20 octets. A [`Serial`] holds
//! only such values (an instance is always valid), and its text form is the one encoding:
//! lower-case hex of the integer's big-endian magnitude, two digits per octet, without the
//! DER sign octet and without leading zero octets. `openssl x509 -serial` prints the same
//! digits in upper case.
//!
//! There is deliberately no `Deserialize`: text is read back with [`str::parse`], which
//! accepts exactly the encoding [`Serial`] prints.

use std::fmt;
use std::str::FromStr;

/// Most octets in a serial's magnitude (RFC 5280 §4.1.2.2).
pub const MAX_SERIAL_OCTETS: usize = 20;

/// A positive certificate serial number of at most [`MAX_SERIAL_OCTETS`] octets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial {
    /// Big-endian magnitude; the first octet is never zero.
    magnitude: Box<[u8]>,
}

/// Why bytes or text are not a [`Serial`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    /// The value is zero (RFC 5280 requires a positive serial).
    #[error("serial number is zero")]
    Zero,
    /// The DER INTEGER is negative (RFC 5280 requires a positive serial).
    #[error("serial number is negative")]
    Negative,
    /// The magnitude is longer than [`MAX_SERIAL_OCTETS`].
    #[error("serial number has {0} octets; at most {MAX_SERIAL_OCTETS} are allowed")]
    TooLong(usize),
    /// The text is not the encoding [`Serial`] prints.
    #[error("serial number text is not {0}")]
    Text(&'static str),
    /// The certificate does not parse.
    #[error("not an x.509 certificate: {0}")]
    Certificate(String),
}

impl Serial {
    /// The serial whose big-endian unsigned magnitude is `octets` (leading zero octets are
    /// ignored), e.g. the random bytes a CA draws.
    pub fn from_magnitude(octets: &[u8]) -> Result<Serial, SerialError> {
        let first = octets
            .iter()
            .position(|b| *b != 0)
            .ok_or(SerialError::Zero)?;
        let magnitude = &octets[first..];
        if magnitude.len() > MAX_SERIAL_OCTETS {
            return Err(SerialError::TooLong(magnitude.len()));
        }
        Ok(Serial {
            magnitude: magnitude.into(),
        })
    }

    /// The serial in the content octets of a DER INTEGER (two's complement, as
    /// `x509_parser`'s `raw_serial()` returns them): the sign octet a DER encoder adds before
    /// a magnitude whose top bit is set is not part of the value.
    pub fn from_der_integer(content: &[u8]) -> Result<Serial, SerialError> {
        match content.first() {
            Some(b) if b & 0x80 != 0 => Err(SerialError::Negative),
            _ => Serial::from_magnitude(content),
        }
    }

    /// The serial of a DER X.509 certificate.
    pub fn of_certificate(der: &[u8]) -> Result<Serial, SerialError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| SerialError::Certificate(e.to_string()))?;
        Serial::from_der_integer(cert.raw_serial())
    }

    /// The big-endian magnitude (first octet non-zero), e.g. for a certificate builder that
    /// adds the DER sign octet itself.
    pub fn magnitude(&self) -> &[u8] {
        &self.magnitude
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.magnitude.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

impl FromStr for Serial {
    type Err = SerialError;

    /// Accepts exactly what [`Serial`]'s `Display` prints.
    fn from_str(text: &str) -> Result<Serial, SerialError> {
        const FORM: &str = "lower-case hex of whole octets";
        if text.is_empty() || !text.len().is_multiple_of(2) {
            return Err(SerialError::Text(FORM));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(SerialError::Text(FORM)),
        };
        let octets = text
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| Ok((digit(pair[0])? << 4) | digit(pair[1])?))
            .collect::<Result<Vec<u8>, SerialError>>()?;
        if octets.first() == Some(&0) {
            return Err(match octets.iter().all(|b| *b == 0) {
                true => SerialError::Zero,
                false => SerialError::Text("free of leading zero octets"),
            });
        }
        Serial::from_magnitude(&octets)
    }
}

impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_der_sign_octet_and_leading_zeros_are_not_part_of_the_encoding() {
        let high_bit = Serial::from_der_integer(&[0x00, 0x80, 0x01]).unwrap();
        assert_eq!(high_bit.to_string(), "8001");
        assert_eq!(high_bit.magnitude(), &[0x80, 0x01]);
        assert_eq!(high_bit, Serial::from_magnitude(&[0x80, 0x01]).unwrap());
        assert_eq!(
            Serial::from_magnitude(&[0, 0, 0x0a]).unwrap().to_string(),
            "0a",
            "two digits per octet: a leading zero digit stays"
        );
        assert_eq!("8001".parse::<Serial>().unwrap(), high_bit);
    }

    #[test]
    fn serials_rfc_5280_forbids_are_refused() {
        assert_eq!(
            Serial::from_der_integer(&[0xff]),
            Err(SerialError::Negative)
        );
        assert_eq!(Serial::from_der_integer(&[0x00]), Err(SerialError::Zero));
        assert_eq!(Serial::from_magnitude(&[]), Err(SerialError::Zero));
        assert_eq!(
            Serial::from_magnitude(&[1; 21]),
            Err(SerialError::TooLong(21))
        );
        assert!(Serial::from_magnitude(&[1; 20]).is_ok());
    }

    #[test]
    fn text_is_read_back_only_in_the_one_encoding() {
        for (text, why) in [
            ("", "empty"),
            ("abc", "odd length"),
            ("AB", "upper case"),
            ("0080", "leading zero octet (the DER sign octet)"),
            ("00", "zero"),
            ("zz", "not hex"),
            ("0x12", "prefix"),
        ] {
            assert!(text.parse::<Serial>().is_err(), "{why}: {text:?} accepted");
        }
        let long = "01".repeat(21);
        assert_eq!(long.parse::<Serial>(), Err(SerialError::TooLong(21)));
        let s: Serial = "0a1b".parse().unwrap();
        assert_eq!(s.to_string().parse::<Serial>().unwrap(), s);
    }

    #[test]
    fn a_certificate_serial_with_its_top_bit_set_reads_without_the_sign_octet() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x9c, 0x00, 0x01]));
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(
            parsed.raw_serial(),
            &[0x00, 0x9c, 0x00, 0x01],
            "DER adds a sign octet"
        );
        let serial = Serial::of_certificate(cert.der()).unwrap();
        assert_eq!(serial.to_string(), "9c0001");
        assert_eq!(
            serde_json::to_value(&serial).unwrap(),
            serde_json::json!("9c0001")
        );
        assert!(matches!(
            Serial::of_certificate(b"not a certificate"),
            Err(SerialError::Certificate(_))
        ));
    }
}
