package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

// The edge features, tried after the load run with real requests through
// the real PoPs, each where the file turns it on: compression (a service
// with compress, in front of the lab's text origin), signed URLs (a
// service with signed_urls) and PROXY protocol (a PoP with
// proxy_protocol that trusts a loopback address, which the lab connects
// from as a load balancer would). What the PoPs counted comes from their
// /metrics, as an operator would read it.

// EdgeFeatures are what the lab saw of each edge feature; a feature the
// file does not use is nil.
type EdgeFeatures struct {
	Compression *CompressionDemo `json:"compression,omitempty"`
	Signed      *SignedDemo      `json:"signed_urls,omitempty"`
	Proxy       *ProxyDemo       `json:"proxy_protocol,omitempty"`
}

// CompressionDemo is one compressible object fetched from one PoP with
// each Accept-Encoding, twice each.
type CompressionDemo struct {
	PoP     string `json:"pop"`
	Service string `json:"service"`
	Path    string `json:"path"`
	// IdentityBytes is the body's size as the origin sent it.
	IdentityBytes int64           `json:"identity_bytes"`
	Encodings     []EncodingFetch `json:"encodings"`
}

// EncodingFetch is one Accept-Encoding's two fetches.
type EncodingFetch struct {
	AcceptEncoding  string `json:"accept_encoding"`
	ContentEncoding string `json:"content_encoding"` // "" for identity
	Bytes           int64  `json:"bytes"`
	// Ratio is Bytes over the identity size.
	Ratio float64 `json:"ratio"`
	// SecondHit reports whether the second fetch was a hit (the encoding
	// was computed once, and stored).
	SecondHit bool `json:"second_fetch_hit"`
	// Compressed is the PoP's outpost_pop_compressed_responses_total for
	// the codec after both fetches (1: computed once); 0 for identity.
	Compressed float64 `json:"compressed_responses"`
}

// SignedDemo is one object of a signed service asked for without a
// signature, with one made as `outpost sign` makes it, and with an
// expired one.
type SignedDemo struct {
	PoP      string `json:"pop"`
	Service  string `json:"service"`
	Path     string `json:"path"`
	Unsigned int    `json:"unsigned_status"`
	Signed   int    `json:"signed_status"`
	Expired  int    `json:"expired_status"`
	// DeniedMissing and DeniedExpired are the PoP's
	// outpost_pop_signed_url_denied_total for those reasons.
	DeniedMissing float64 `json:"denied_missing"`
	DeniedExpired float64 `json:"denied_expired"`
}

// ProxyDemo is one request sent as a load balancer would: from a trusted
// address, after a PROXY protocol v2 header that names a client.
type ProxyDemo struct {
	PoP      string `json:"pop"`
	Balancer string `json:"balancer"` // the address the lab connected from
	Client   string `json:"client"`   // the client address the header claimed
	Status   int    `json:"status"`
	// OriginSaw is the X-Forwarded-For the origin received.
	OriginSaw string `json:"origin_saw"`
	// LogLine is the request's line in the PoP's access log, when it
	// logs every request to a file ("" otherwise); its first field is
	// the client.
	LogLine string `json:"access_log_line,omitempty"`
	// Accepted is the PoP's
	// outpost_pop_proxy_protocol_connections_total{listener="clear",result="accepted"}.
	Accepted float64 `json:"accepted"`
}

// tryEdge tries each edge feature the file turns on. assets is the lab's
// text origin (nil when the file has no service for it).
func tryEdge(ctx context.Context, cfg *config.Config, assets *assetOrigin) (*EdgeFeatures, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableCompression: true, Proxy: nil}}
	defer c.CloseIdleConnections()
	e := &EdgeFeatures{}
	var err error
	p0 := cfg.POPs[0]
	for _, svc := range cfg.Services {
		switch {
		case svc.Compress.Enabled && e.Compression == nil && assets != nil && svc.Origin.Servers[0].URL.Host == assets.addr:
			if e.Compression, err = tryCompression(ctx, c, p0, svc); err != nil {
				return nil, err
			}
		case svc.SignedURLs.Enabled() && e.Signed == nil:
			if e.Signed, err = trySigned(ctx, c, p0, svc); err != nil {
				return nil, err
			}
		}
	}
	if assets != nil {
		for _, p := range cfg.POPs {
			if bal, ok := loopbackBalancer(p); ok {
				if e.Proxy, err = tryProxy(ctx, c, p, bal, assets); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	return e, nil
}

// serveURL is a PoP's serving base URL.
func serveURL(p config.POP) string { return "http://" + reach(p, p.Listen) }

// reach is addr, with p's address in place of a wildcard host.
func reach(p config.POP, addr string) string {
	if h, port, err := net.SplitHostPort(addr); err == nil && (h == "" || net.ParseIP(h).IsUnspecified()) {
		return net.JoinHostPort(p.Address.String(), port)
	}
	return addr
}

// fetch GETs url from a PoP as host, with the header fields given, and
// returns the response with its body read.
func fetch(ctx context.Context, c *http.Client, url, host string, header ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: %w", err)
	}
	req.Host = host
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("lab: edge features: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("lab: edge features: GET %s: %w", url, err)
	}
	return resp, body, nil
}

// isHit reports whether a response's Cache-Status (the PoP's member,
// the last) says hit.
func isHit(resp *http.Response) bool {
	members := resp.Header.Values("Cache-Status")
	if len(members) == 0 {
		return false
	}
	for param := range strings.SplitSeq(members[len(members)-1], ";") {
		if strings.TrimSpace(param) == "hit" {
			return true
		}
	}
	return false
}

func tryCompression(ctx context.Context, c *http.Client, p config.POP, svc config.Service) (*CompressionDemo, error) {
	d := &CompressionDemo{PoP: p.Name, Service: svc.Name, Path: "/app.js"}
	url := serveURL(p) + d.Path
	for _, ae := range []string{"identity", "zstd", "br", "gzip"} {
		f := EncodingFetch{AcceptEncoding: ae}
		for i := range 2 {
			resp, body, err := fetch(ctx, c, url, svc.Hostnames[0], "Accept-Encoding", ae)
			if err != nil {
				return nil, err
			}
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("lab: compression: GET %s with Accept-Encoding %s: %s", url, ae, resp.Status)
			}
			if i == 0 {
				f.ContentEncoding, f.Bytes = resp.Header.Get("Content-Encoding"), int64(len(body))
			} else {
				f.SecondHit = isHit(resp)
			}
		}
		if ae == "identity" {
			d.IdentityBytes = f.Bytes
		} else {
			v, err := metric(ctx, c, p, fmt.Sprintf(`outpost_pop_compressed_responses_total{codec=%q,service=%q}`, f.ContentEncoding, svc.Name))
			if err != nil {
				return nil, err
			}
			f.Compressed = v
		}
		f.Ratio = round(float64(f.Bytes)/float64(max(d.IdentityBytes, 1)), 4)
		d.Encodings = append(d.Encodings, f)
	}
	return d, nil
}

func trySigned(ctx context.Context, c *http.Client, p config.POP, svc config.Service) (*SignedDemo, error) {
	d := &SignedDemo{PoP: p.Name, Service: svc.Name, Path: "/obj/signed-lab"}
	url := serveURL(p) + d.Path
	status := func(u string) (int, error) {
		resp, _, err := fetch(ctx, c, u, svc.Hostnames[0])
		if err != nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	key := svc.SignedURLs.Keys[0]
	signed, err := pop.SignURL(url, key, time.Now().Add(5*time.Minute), netip.Prefix{})
	if err != nil {
		return nil, fmt.Errorf("lab: signed URLs: %w", err)
	}
	expired, err := pop.SignURL(url, key, time.Now().Add(-time.Minute), netip.Prefix{})
	if err != nil {
		return nil, fmt.Errorf("lab: signed URLs: %w", err)
	}
	for _, s := range []struct {
		url string
		dst *int
	}{{url, &d.Unsigned}, {signed, &d.Signed}, {expired, &d.Expired}} {
		if *s.dst, err = status(s.url); err != nil {
			return nil, err
		}
	}
	for reason, dst := range map[string]*float64{"missing": &d.DeniedMissing, "expired": &d.DeniedExpired} {
		if *dst, err = metric(ctx, c, p, fmt.Sprintf(`outpost_pop_signed_url_denied_total{reason=%q,service=%q}`, reason, svc.Name)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// loopbackBalancer is the address a PoP's proxy_protocol trusts that the
// lab can connect from: the first trusted network that is one loopback
// address.
func loopbackBalancer(p config.POP) (netip.Addr, bool) {
	for _, pfx := range p.ProxyProtocol.Trusted {
		if pfx.IsSingleIP() && pfx.Addr().IsLoopback() {
			return pfx.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// proxyClient is the client address the lab's PROXY header claims.
var proxyClient = netip.MustParseAddrPort("198.51.100.77:40000")

func tryProxy(ctx context.Context, c *http.Client, p config.POP, balancer netip.Addr, assets *assetOrigin) (*ProxyDemo, error) {
	d := &ProxyDemo{PoP: p.Name, Balancer: balancer.String(), Client: proxyClient.Addr().String()}
	dialer := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: balancer.AsSlice()}}
	target := reach(p, p.Listen)
	conn, err := dialer.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, fmt.Errorf("lab: PROXY protocol: connecting from %s: %w", balancer, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := proxyproto.HeaderProxyFromAddrs(2, net.TCPAddrFromAddrPort(proxyClient), conn.RemoteAddr())
	if _, err := hdr.WriteTo(conn); err != nil {
		return nil, fmt.Errorf("lab: PROXY protocol: %w", err)
	}
	const path = "/proxied.txt"
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, assets.host); err != nil {
		return nil, fmt.Errorf("lab: PROXY protocol: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("lab: PROXY protocol: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d.Status = resp.StatusCode
	d.OriginSaw = assets.forwardedFor(path)
	if d.LogLine, err = logLine(ctx, p.AccessLog, " "+path+" "); err != nil {
		return nil, err
	}
	if d.Accepted, err = metric(ctx, c, p, `outpost_pop_proxy_protocol_connections_total{listener="clear",result="accepted"}`); err != nil {
		return nil, err
	}
	return d, nil
}

// logLine waits for the access log line that contains s, when a logs
// every request to a file: the writer is a goroutine of its own.
func logLine(ctx context.Context, a config.AccessLog, s string) (string, error) {
	if a.Mode != config.AccessLogFull || a.Path == "" || a.Path == config.AccessLogStdout || a.Path == config.AccessLogStderr {
		return "", nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(a.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("lab: access log: %w", err)
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			if strings.Contains(line, s) {
				return line, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("lab: access log %s: no line with %q within 5s", a.Path, s)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// metric reads one sample (name with its labels, as /metrics writes them)
// from a PoP's /metrics; a sample not there is 0.
func metric(ctx context.Context, c *http.Client, p config.POP, sample string) (float64, error) {
	resp, body, err := fetch(ctx, c, "http://"+reach(p, p.Admin)+"/metrics", "")
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("lab: %s /metrics: %s", p.Name, resp.Status)
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, nil
}

// write prints what the lab saw of the edge features.
func (e *EdgeFeatures) write(out io.Writer) {
	if e == nil || e.Compression == nil && e.Signed == nil && e.Proxy == nil {
		return
	}
	fmt.Fprintf(out, "\nEdge features (real requests through the PoPs; docs/compression.md, signed-urls.md, proxy-protocol.md):\n")
	if d := e.Compression; d != nil {
		fmt.Fprintf(out, "  compression at %s, %s of service %s (%d bytes as the origin sent it), fetched twice per Accept-Encoding:\n", d.PoP, d.Path, d.Service, d.IdentityBytes)
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		for _, f := range d.Encodings {
			enc := f.ContentEncoding
			if enc == "" {
				enc = "identity"
			}
			computed := ""
			if f.ContentEncoding != "" {
				computed = fmt.Sprintf("compressed %g time(s)", f.Compressed)
			}
			fmt.Fprintf(tw, "    Accept-Encoding: %s\t→ %s\t%d bytes\t%s\tsecond fetch: %s\t%s\n", f.AcceptEncoding, enc, f.Bytes, pctText(f.Ratio), hitText(f.SecondHit), computed)
		}
		tw.Flush()
	}
	if d := e.Signed; d != nil {
		fmt.Fprintf(out, "  signed URLs at %s, %s of service %s: unsigned %d, signed (as outpost sign makes it) %d, expired %d; outpost_pop_signed_url_denied_total missing %g, expired %g\n",
			d.PoP, d.Path, d.Service, d.Unsigned, d.Signed, d.Expired, d.DeniedMissing, d.DeniedExpired)
	}
	if d := e.Proxy; d != nil {
		fmt.Fprintf(out, "  PROXY protocol at %s: from %s (trusted) with a v2 header for client %s: %d; the origin saw X-Forwarded-For %q; accepted connections %g\n",
			d.PoP, d.Balancer, d.Client, d.Status, d.OriginSaw, d.Accepted)
		if d.LogLine != "" {
			fmt.Fprintf(out, "    access log: %s\n", d.LogLine)
		}
	}
}

func pctText(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

func hitText(hit bool) string {
	if hit {
		return "hit"
	}
	return "not a hit"
}

// assetOrigin is the lab's second origin: compressible text (a
// JavaScript-like file at every path) for the service with compress, which
// the synthetic origin's pseudo-random objects are not. It remembers the
// X-Forwarded-For of each path, for the PROXY protocol demonstration.
type assetOrigin struct {
	addr string // host:port
	host string // the service hostname it serves
	body []byte

	mu  sync.Mutex
	xff map[string]string
}

// newAssetOrigin returns the lab's text origin for the file's first
// service with compress whose origin is a loopback address other than
// the synthetic origin's, or nil when there is none.
func newAssetOrigin(cfg *config.Config, originAddr string) *assetOrigin {
	for _, svc := range cfg.Services {
		u := svc.Origin.Servers[0].URL
		if !svc.Compress.Enabled || u.Scheme != "http" || u.Host == originAddr {
			continue
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err != nil || !ip.IsLoopback() {
			continue
		}
		var b strings.Builder
		for i := range 3000 {
			fmt.Fprintf(&b, "export function step%d(state, input) { return { ...state, total: state.total + input * %d, step: %d }; }\n", i, i%97, i)
		}
		return &assetOrigin{addr: u.Host, host: svc.Hostnames[0], body: []byte(b.String()), xff: map[string]string{}}
	}
	return nil
}

// ServeHTTP answers every GET with the text, cacheable for five minutes.
func (a *assetOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.xff[r.URL.Path] = r.Header.Get("X-Forwarded-For")
	a.mu.Unlock()
	ct := "text/plain; charset=utf-8"
	if strings.HasSuffix(r.URL.Path, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Length", strconv.Itoa(len(a.body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(a.body)
}

// forwardedFor is the X-Forwarded-For of the last request for path.
func (a *assetOrigin) forwardedFor(path string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.xff[path]
}

// serve runs the text origin on ln until ctx is done.
func (a *assetOrigin) serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("text origin: %w", err)
	}
	return nil
}
