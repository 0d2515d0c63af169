package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults of Config's fields.
const (
	DefaultConnections = 10
	DefaultDuration    = 10 * time.Second
	DefaultTimeout     = 10 * time.Second
	// ProtocolHTTP1 is HTTP/1.1, over TLS for https URLs.
	ProtocolHTTP1 = "http/1.1"
	// ProtocolHTTP2 is HTTP/2: negotiated by ALPN for https URLs, h2c with
	// prior knowledge for http ones.
	ProtocolHTTP2 = "h2"
	// ProtocolHTTP3 is HTTP/3 over QUIC, for https URLs only.
	ProtocolHTTP3 = "h3"
)

// Config describes a run. Only URL is required; every other field has a
// documented default.
type Config struct {
	// URL is the target: http or https. Its host is the service's host
	// name: the Host header, the TLS server name and, with DNS, the name
	// resolved. Its path and query are requested when Workload is nil.
	URL string
	// Connect, if set, is the address (host:port) every connection goes
	// to instead of URL's host: one PoP directly, with the URL's Host.
	Connect string
	// DNS, if set, is a DNS server (host:port) through which each virtual
	// client resolves URL's host, with its region's client subnet as EDNS
	// Client Subnet; it connects to the answer, on URL's port, and resolves
	// again when the answer's TTL has run out.
	DNS string
	// Regions are the client population for DNS targeting. Each virtual
	// client picks a region by weight and an address in its subnet. Empty
	// means one region without ECS.
	Regions []Region

	// Connections is the number of virtual clients, each with one
	// connection; zero means DefaultConnections.
	Connections int
	// Rate, if > 0, runs open loop: requests are due at Rate per second in
	// all, spread over the connections, and latency counts from each one's
	// due time. Zero runs closed loop (or at a Paced workload's own pace).
	Rate float64
	// Duration is the measured window. With neither Duration nor
	// Requests, it is DefaultDuration, or a trace's whole length.
	Duration time.Duration
	// Requests caps the measured requests, instead of Duration or as well.
	Requests int64
	// Warmup is run before the measured window and left out of the results.
	Warmup time.Duration
	// Timeout bounds each request, from its sending to its last byte
	// (dialing included; a DNS query waits at most the smaller of Timeout
	// and 5 s); zero means DefaultTimeout.
	Timeout time.Duration

	// Workload decides the requests; nil requests URL's path every time.
	Workload Workload
	// Method is GET (the default) or HEAD.
	Method string
	// Header lines ("Name: value") are added to every request.
	Header []string
	// Seed makes region and address choices reproducible (workloads take
	// their own seed).
	Seed uint64
	// Verify checks every 200 response to /obj/{id} against the synthetic
	// origin's content for the id, byte for byte and in length.
	Verify bool
	// OriginStats, if set, is the synthetic origin's /_origin/stats URL:
	// it is reset (POST) when the window starts and read (GET) at the end,
	// for the origin offload.
	OriginStats string
	// InsecureTLS skips the verification of https servers' certificates.
	InsecureTLS bool
	// Protocol is ProtocolHTTP1 (the default; "h1" is taken for it),
	// ProtocolHTTP2 or ProtocolHTTP3. With HTTP/2 and HTTP/3 each virtual
	// client still has one connection of its own. Responses that come back
	// on another protocol (an HTTP/2 run against a server that only speaks
	// HTTP/1.1) are errors of kind protocol.
	Protocol string

	// Logger receives warnings (nil: discard); nothing is logged per request.
	Logger *slog.Logger
}

// target is where a run's requests go.
type target struct {
	url    *url.URL
	host   string // the Host header (with a non-default port)
	name   string // the host name, without port
	port   string
	direct string // the address to dial, in direct mode
	path   string // the URL's request-target
}

// check validates the configuration and fills in defaults. It reports
// every problem at once.
func (c *Config) check() (target, error) {
	var t target
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("no URL"))
	case err != nil:
		errs = append(errs, fmt.Errorf("URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("URL %q: the scheme must be http or https", c.URL))
	case u.Host == "" || u.Hostname() == "":
		errs = append(errs, fmt.Errorf("URL %q has no host", c.URL))
	default:
		t.url, t.host, t.name, t.port = u, u.Host, u.Hostname(), u.Port()
		if t.port == "" {
			t.port = "80"
			if u.Scheme == "https" {
				t.port = "443"
			}
		}
		t.direct = net.JoinHostPort(t.name, t.port)
		t.path = u.RequestURI()
	}
	if c.Connect != "" {
		if _, _, err := net.SplitHostPort(c.Connect); err != nil {
			errs = append(errs, fmt.Errorf("connect address %q: %w", c.Connect, err))
		}
		t.direct = c.Connect
	}
	if c.DNS != "" {
		if c.Connect != "" {
			errs = append(errs, errors.New("connect and DNS are exclusive: one picks the address, the other resolves it"))
		}
		if _, _, err := net.SplitHostPort(c.DNS); err != nil {
			errs = append(errs, fmt.Errorf("DNS server %q: %w", c.DNS, err))
		}
		if _, err := netip.ParseAddr(t.name); err == nil {
			errs = append(errs, errNoDNSTarget)
		}
	} else if len(c.Regions) > 0 {
		errs = append(errs, errors.New("regions need a DNS server: they are sent as EDNS Client Subnet"))
	}
	seen := map[string]bool{}
	for _, r := range c.Regions {
		if r.Name == "" || !r.Prefix.IsValid() || r.Weight < 0 || math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) {
			errs = append(errs, fmt.Errorf("region %q: want a name, a prefix and a weight ≥ 0", r.String()))
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("region %q is listed twice", r.Name))
		}
		seen[r.Name] = true
	}
	if c.Connections == 0 {
		c.Connections = DefaultConnections
	}
	if c.Connections < 0 || c.Connections > 1<<20 {
		errs = append(errs, fmt.Errorf("%d connections: want 1 to %d", c.Connections, 1<<20))
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want a number of requests per second ≥ 0", c.Rate))
	}
	if c.Duration < 0 || c.Requests < 0 || c.Warmup < 0 || c.Timeout < 0 {
		errs = append(errs, errors.New("duration, requests, warm-up and timeout must not be negative"))
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	switch c.Method = strings.ToUpper(c.Method); c.Method {
	case "":
		c.Method = "GET"
	case "GET", "HEAD":
	default:
		errs = append(errs, fmt.Errorf("method %q: want GET or HEAD", c.Method))
	}
	for _, h := range c.Header {
		name, _, ok := strings.Cut(h, ":")
		if !ok || name == "" || strings.ContainsAny(h, "\r\n") || strings.ContainsAny(name, " \t") {
			errs = append(errs, fmt.Errorf("header %q: want \"Name: value\" on one line", h))
		}
		if strings.EqualFold(name, "host") {
			errs = append(errs, fmt.Errorf("header %q: the Host is the URL's", h))
		}
	}
	switch c.Protocol {
	case "", "h1", ProtocolHTTP1:
		c.Protocol = ProtocolHTTP1
	case ProtocolHTTP2:
	case ProtocolHTTP3:
		if t.url != nil && t.url.Scheme != "https" {
			errs = append(errs, fmt.Errorf("protocol %s needs an https URL: HTTP/3 runs over QUIC, with TLS", c.Protocol))
		}
	default:
		errs = append(errs, fmt.Errorf("protocol %q: want h1 (%s), %s or %s", c.Protocol, ProtocolHTTP1, ProtocolHTTP2, ProtocolHTTP3))
	}
	if c.OriginStats != "" {
		if u, err := url.Parse(c.OriginStats); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("origin stats URL %q: want http(s)://host/_origin/stats", c.OriginStats))
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(errs) > 0 {
		return t, fmt.Errorf("bench: %w", errors.Join(errs...))
	}
	if c.Workload == nil {
		c.Workload = fixedPath(t.path)
	}
	return t, nil
}
