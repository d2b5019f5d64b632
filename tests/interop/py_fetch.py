"""sworn's interoperability probe for py-spiffe: fetch an X509-SVID through
the unmodified public client and print it as one JSON line."""
import json
import sys

from spiffe import WorkloadApiClient


def main() -> int:
    socket = sys.argv[1] if len(sys.argv) > 1 else None
    with WorkloadApiClient(socket_path=socket, default_timeout=20) as client:
        svid = client.fetch_x509_svid()
        bundles = client.fetch_x509_bundles()
    print(json.dumps({
        "spiffe_id": str(svid.spiffe_id),
        "serial": format(svid.leaf.serial_number, "x"),
        "bundle_domains": sorted(str(b.trust_domain) for b in bundles.bundles),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
