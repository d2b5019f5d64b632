// go-fetch is sworn's interoperability probe for go-spiffe v2: it fetches an
// X509-SVID through the unmodified public client and prints one JSON line
// per X.509 context it sees. With -updates N it keeps watching until it has
// printed N contexts (to observe rotation), otherwise it prints one and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type line struct {
	SpiffeID string `json:"spiffe_id"`
	Serial   string `json:"serial"`
	NotAfter string `json:"not_after"`
	Bundle   int    `json:"bundle_roots"`
}

type watcher struct {
	left int
	done chan struct{}
}

func (w *watcher) OnX509ContextUpdate(c *workloadapi.X509Context) {
	svid := c.DefaultSVID()
	b, _ := c.Bundles.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	roots := 0
	if b != nil {
		roots = len(b.X509Authorities())
	}
	out, _ := json.Marshal(line{svid.ID.String(), svid.Certificates[0].SerialNumber.Text(16), svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339), roots})
	fmt.Println(string(out))
	w.left--
	if w.left == 0 {
		close(w.done)
	}
}

func (w *watcher) OnX509ContextWatchError(err error) {
	out, _ := json.Marshal(map[string]string{"watch_error": err.Error()})
	fmt.Println(string(out))
}

func main() {
	addr := flag.String("addr", os.Getenv("SPIFFE_ENDPOINT_SOCKET"), "Workload API address (unix:///path)")
	updates := flag.Int("updates", 0, "watch until this many X.509 contexts were seen")
	timeout := flag.Duration("timeout", 30*time.Second, "overall deadline")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if *updates == 0 {
		svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(*addr))
		if err != nil {
			out, _ := json.Marshal(map[string]string{"error": err.Error()})
			fmt.Println(string(out))
			os.Exit(1)
		}
		out, _ := json.Marshal(line{svid.ID.String(), svid.Certificates[0].SerialNumber.Text(16), svid.Certificates[0].NotAfter.UTC().Format(time.RFC3339), 0})
		fmt.Println(string(out))
		return
	}
	w := &watcher{left: *updates, done: make(chan struct{})}
	go func() {
		_ = workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr(*addr))
	}()
	select {
	case <-w.done:
	case <-ctx.Done():
		fmt.Fprintln(os.Stderr, "timed out waiting for updates")
		os.Exit(1)
	}
}
