// spiffetls-client: a go-spiffe spiffetls client used by sworn-helper's interop test.
//
// It gets its own X509-SVID from the Workload API (SPIFFE_ENDPOINT_SOCKET or -socket), dials
// -addr with mTLS, requires the server to present -expect-id, writes -message, half-closes,
// and prints what comes back on stdout. Any failure exits non-zero with the reason on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

func main() {
	addr := flag.String("addr", "", "server address host:port")
	expect := flag.String("expect-id", "", "SPIFFE ID the server must present")
	socket := flag.String("socket", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API endpoint")
	message := flag.String("message", "hello from go-spiffe", "bytes to send")
	flag.Parse()
	if err := run(*addr, *expect, *socket, *message); err != nil {
		fmt.Fprintln(os.Stderr, "spiffetls-client:", err)
		os.Exit(1)
	}
}

func run(addr, expect, socket, message string) error {
	id, err := spiffeid.FromString(expect)
	if err != nil {
		return fmt.Errorf("expect-id: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := spiffetls.DialWithMode(ctx, "tcp", addr,
		spiffetls.MTLSClientWithSourceOptions(
			tlsconfig.AuthorizeID(id),
			workloadapi.WithClientOptions(workloadapi.WithAddr(socket)),
		))
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// In TLS 1.3 a server refuses the client's certificate after the client's handshake
	// is done, so a write can fail before the client has read the server's alert. Then
	// read once more: the alert, if it arrived, says why.
	withAlert := func(what string, werr error) error {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, rerr := io.ReadAll(conn); rerr != nil {
			return fmt.Errorf("%s: %w (then read: %v)", what, werr, rerr)
		}
		return fmt.Errorf("%s: %w", what, werr)
	}
	if _, err := conn.Write([]byte(message)); err != nil {
		return withAlert("write", err)
	}
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := conn.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil {
			return withAlert("close write", err)
		}
	}
	reply, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(reply) == 0 {
		return fmt.Errorf("the server closed the connection without a reply")
	}
	_, err = os.Stdout.Write(reply)
	return err
}
