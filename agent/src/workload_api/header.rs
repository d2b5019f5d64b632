//! The Workload API security header (SPIFFE Workload Endpoint spec "The CA"; docs/architecture.md, "Protocols").
//!
//! Every call must carry `workload.spiffe.io: true`: exactly one value, exactly `"true"`.
//! Anything else is `InvalidArgument`, decided before any attestation, so a browser or a
//! confused proxy forwarding requests never gets as far as the caller's identity.

use tonic::metadata::MetadataMap;

/// The header name.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";

/// `Ok` if the header is present once with the value `true`.
pub fn check(metadata: &MetadataMap) -> Result<(), tonic::Status> {
    let mut values = metadata.get_all(SECURITY_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if v.as_bytes() == b"true" => Ok(()),
        (None, _) => Err(tonic::Status::invalid_argument(
            "security header workload.spiffe.io is missing",
        )),
        (Some(_), Some(_)) => Err(tonic::Status::invalid_argument(
            "security header workload.spiffe.io must have exactly one value",
        )),
        (Some(_), None) => Err(tonic::Status::invalid_argument(
            "security header workload.spiffe.io must be \"true\"",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: &[&'static str]) -> MetadataMap {
        let mut m = MetadataMap::new();
        for v in values {
            m.append(
                SECURITY_HEADER,
                tonic::metadata::MetadataValue::from_static(v),
            );
        }
        m
    }

    #[test]
    fn exactly_one_true_passes() {
        assert!(check(&map(&["true"])).is_ok());
    }

    #[test]
    fn missing_twice_or_wrong_case_is_invalid_argument() {
        for values in [&[][..], &["true", "true"], &["True"], &["1"], &[""]] {
            let err = check(&map(values)).err().map(|s| s.code());
            assert_eq!(err, Some(tonic::Code::InvalidArgument), "{values:?}");
        }
    }
}
