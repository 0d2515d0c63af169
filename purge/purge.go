// Package purge removes content from every PoP of a CDN at once and
// confirms it: Send posts one purge, with one ID, to each PoP's admin
// listener concurrently, retries transient failures (the ID makes a
// retried purge apply once), and reports per PoP whether it acknowledged,
// how many objects it purged and how long it took.
package purge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/popapi"
)

// Options tune Send. Every field is optional.
type Options struct {
	// Token is the bearer token; "" means the file's purge.token.
	Token string
	// Client sends the requests; nil means a client with Timeout.
	Client *http.Client
	// Timeout bounds each attempt; zero means 5s.
	Timeout time.Duration
	// Attempts is how often a PoP is tried; zero means 3.
	Attempts int
	// Backoff is the pause before the first retry, doubled after each;
	// zero means 50ms.
	Backoff time.Duration
}

// Result is one PoP's answer to a purge.
type Result struct {
	PoP       string        // the PoP's name
	Admin     string        // its admin listener's base URL
	OK        bool          // it acknowledged the purge
	Purged    int           // objects it deleted or marked stale
	Duplicate bool          // it had applied this purge's ID before
	Attempts  int           // requests sent
	Latency   time.Duration // from the first request to the outcome
	Err       error         // why it did not confirm
}

// NewID returns a random purge ID.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Check validates a purge against the file before anything is sent: one
// target, and for URLs and prefixes a host that a service serves.
func Check(cfg *config.Config, req popapi.PurgeRequest) error {
	n := 0
	for _, v := range []string{req.URL, req.Prefix, req.Tag} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return errors.New("purge: name exactly one of a URL, a prefix or a tag")
	}
	target := req.URL + req.Prefix
	if target == "" {
		return nil
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("purge: %q is not an absolute http(s) URL", target)
	}
	if _, ok := cfg.ServiceByHost(strings.ToLower(u.Hostname())); !ok {
		return fmt.Errorf("purge: no service in %s has the host %q", cfg.Path, u.Hostname())
	}
	return nil
}

// Send sends req to every PoP of cfg at once and returns their results in
// the file's order. A PoP that does not confirm has OK false and Err set.
func Send(ctx context.Context, cfg *config.Config, req popapi.PurgeRequest, opts Options) []Result {
	if opts.Token == "" {
		opts.Token = cfg.Purge.Token
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.Timeout}
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 50 * time.Millisecond
	}
	if req.ID == "" {
		req.ID = NewID()
	}
	body, _ := json.Marshal(req)
	results := make([]Result, len(cfg.POPs))
	var wg sync.WaitGroup
	for i := range cfg.POPs {
		p := &cfg.POPs[i]
		results[i] = Result{PoP: p.Name, Admin: AdminURL(p)}
		wg.Go(func() { sendOne(ctx, &results[i], body, opts) })
	}
	wg.Wait()
	return results
}

// sendOne purges one PoP, retrying what may succeed on a second try.
func sendOne(ctx context.Context, r *Result, body []byte, opts Options) {
	start := time.Now()
	defer func() { r.Latency = time.Since(start) }()
	backoff := opts.Backoff
	for r.Attempts < opts.Attempts {
		r.Attempts++
		ack, retry, err := attempt(ctx, r.Admin, body, opts)
		if err == nil {
			r.OK, r.Purged, r.Duplicate, r.Err = true, ack.Purged, ack.Duplicate, nil
			return
		}
		r.Err = err
		if !retry || r.Attempts == opts.Attempts {
			return
		}
		select {
		case <-ctx.Done():
			r.Err = ctx.Err()
			return
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// attempt posts the purge once. retry says whether another attempt may
// succeed: network errors and 5xx/429 answers, not refusals.
func attempt(ctx context.Context, admin string, body []byte, opts Options) (popapi.PurgeResult, bool, error) {
	var ack popapi.PurgeResult
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/purge", bytes.NewReader(body))
	if err != nil {
		return ack, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+opts.Token)
	resp, err := opts.Client.Do(req)
	if err != nil {
		return ack, true, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(raw))
		err := fmt.Errorf("%s: %s", resp.Status, msg)
		return ack, resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests, err
	}
	if err := json.Unmarshal(raw, &ack); err != nil {
		return ack, true, fmt.Errorf("bad acknowledgement %q: %w", raw, err)
	}
	return ack, false, nil
}

// AdminURL is the base URL of a PoP's admin listener. A wildcard admin
// address is reached on the PoP's listen host, or on loopback when that is
// a wildcard too.
func AdminURL(p *config.POP) string {
	host, port, err := net.SplitHostPort(p.Admin)
	if err != nil {
		return "http://" + p.Admin
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if lh, _, err := net.SplitHostPort(p.Listen); err == nil {
			if ip := net.ParseIP(lh); lh != "" && (ip == nil || !ip.IsUnspecified()) {
				host = lh
			}
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
