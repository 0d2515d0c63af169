package origin

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"
)

// This file holds what configures a pool: its servers, the Options and
// their parts (timeouts, health checks, ejection, load polls, TLS), each
// with the default a zero field takes.

// The defaults that zero fields of Options take. Package config applies
// the same ones to the settings a file leaves out, so they are defined
// here only.
const (
	DefaultPolicy           = PolicyRoundRobin
	DefaultHashKey          = HashClientIP
	DefaultConnectTimeout   = 2 * time.Second
	DefaultFirstByteTimeout = 15 * time.Second
	DefaultIdleTimeout      = 30 * time.Second
	DefaultHealthInterval   = 5 * time.Second
	DefaultHealthTimeout    = 2 * time.Second // or the interval, if shorter
	DefaultHealthRise       = 2
	DefaultHealthFall       = 3
	DefaultEjectFailures    = 5
	DefaultEjectCooldown    = 10 * time.Second
	DefaultLoadPath         = "/_origin/load"
	DefaultLoadInterval     = 2 * time.Second
	DefaultLoadTimeout      = time.Second // or the interval, if shorter
)

// Server is one origin server of a service.
type Server struct {
	URL    *url.URL // scheme and host, and an optional path prefix
	Weight int      // share of requests under the weighted policies; values below 1 count as 1
	// MaxConns caps the connections to this server; requests beyond it
	// wait for one to free up. 0 means no cap.
	MaxConns int
	// HealthURL is what the active health checks GET for this server; nil
	// means URL with HealthCheck.Path. (A pool of Outpost shield PoPs
	// probes each one's admin /healthz, apart from the address it serves.)
	HealthURL *url.URL
}

// Timeouts bound each origin request. A zero field takes the default named
// on it.
type Timeouts struct {
	Connect   time.Duration // TCP (and TLS) connect; default 2s
	FirstByte time.Duration // from sending the request to its response header; default 15s
	Idle      time.Duration // longest pause while reading the body; default 30s
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultConnectTimeout
	}
	if t.FirstByte <= 0 {
		t.FirstByte = DefaultFirstByteTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// HealthCheck configures active health checks: every Interval the pool
// sends GET Path to each server and expects a 2xx or 3xx answer within
// Timeout. Fall failures in a row make a server unhealthy, Rise successes
// in a row healthy again. Servers start healthy.
type HealthCheck struct {
	Path     string        // e.g. "/healthz"; may carry a query
	Interval time.Duration // default 5s
	Timeout  time.Duration // default 2s, at most Interval
	Rise     int           // default 2
	Fall     int           // default 3
	// Draining, if not "", is how a server announces its shutdown: a 503
	// answer whose body starts with it makes the server unhealthy at
	// once, without waiting for Fall failures (Outpost PoPs' /healthz
	// answers 503 "draining" while they still serve). "" means a 503
	// counts as any failure.
	Draining string
}

func (h HealthCheck) withDefaults() HealthCheck {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = min(DefaultHealthTimeout, h.Interval)
	}
	if h.Rise <= 0 {
		h.Rise = DefaultHealthRise
	}
	if h.Fall <= 0 {
		h.Fall = DefaultHealthFall
	}
	return h
}

// Ejection configures passive ejection: a server that fails Failures
// requests in a row is out of rotation for Cooldown; then the next request
// picked for it is a trial (one at a time): if it succeeds the server is
// back, if it fails the cool-down starts again. Any success of a request
// sent after the ejection also brings the server back.
type Ejection struct {
	Failures int           // default 5
	Cooldown time.Duration // default 10s
}

func (e Ejection) withDefaults() Ejection {
	if e.Failures <= 0 {
		e.Failures = DefaultEjectFailures
	}
	if e.Cooldown <= 0 {
		e.Cooldown = DefaultEjectCooldown
	}
	return e
}

// LoadProbe configures how PolicyAdaptive learns each server's load: every
// Interval it sends GET Path, whose answer must be 2xx with a body that is
// one non-negative number (surrounding space allowed); lower means less
// loaded, in any unit all servers share. A failed poll makes the load
// unknown, which counts as the pool's mean.
type LoadProbe struct {
	Path     string        // default "/_origin/load"
	Interval time.Duration // default 2s
	Timeout  time.Duration // default 1s, at most Interval
}

func (l LoadProbe) withDefaults() LoadProbe {
	if l.Path == "" {
		l.Path = DefaultLoadPath
	}
	if l.Interval <= 0 {
		l.Interval = DefaultLoadInterval
	}
	if l.Timeout <= 0 {
		l.Timeout = min(DefaultLoadTimeout, l.Interval)
	}
	return l
}

// TLS configures connections to https servers. The zero value verifies
// the server's certificate against the system roots, for the URL's host.
type TLS struct {
	// CAFile is a PEM file of the certificate authorities to trust instead
	// of the system roots; "" means the system roots.
	CAFile string
	// ServerName is sent as SNI and verified in the certificate; "" means
	// the host of each server's URL. Set it when the URLs are IP
	// addresses.
	ServerName string
	// InsecureSkipVerify accepts any certificate. For testing only: it
	// lets anyone on the path impersonate the origin.
	InsecureSkipVerify bool
}

// Options configure a pool. Every field is optional.
type Options struct {
	// Name names the pool (its service) in logs.
	Name string
	// Policy chooses the server for each request; "" means
	// PolicyRoundRobin.
	Policy Policy
	// HashKey is what PolicyIPHash hashes; "" means HashClientIP.
	HashKey HashKey
	// Timeouts bound each request.
	Timeouts Timeouts
	// Health enables active health checks; nil means none.
	Health *HealthCheck
	// Ejection configures passive ejection, which is always on; zero
	// fields take the defaults.
	Ejection Ejection
	// Load configures the load polls of PolicyAdaptive (other policies do
	// not poll); zero fields take the defaults.
	Load LoadProbe
	// TLS configures connections to https servers.
	TLS TLS
	// HostHeader is the Host sent to the servers; "" means each server
	// URL's host.
	HostHeader string
	// MaxHeaderBytes bounds the size of a server's response header (and
	// of each interim 1xx one); a larger one fails the request with a
	// KindProtocol error, which counts against the server. 0 means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Logger receives state changes (ejections, recoveries, health);
	// nil means slog.Default(). Nothing is logged per request above debug.
	Logger *slog.Logger
	// Now is the clock for cool-downs, response times and their decay; nil
	// means time.Now.
	Now func() time.Time
}

// DefaultMaxHeaderBytes is the bound on a response header when
// Options.MaxHeaderBytes is 0: 64 KiB, the order of nginx's proxy buffers,
// and far above what real origins send.
const DefaultMaxHeaderBytes = 64 << 10

// config builds the tls.Config for t.
func (t TLS) config() (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // documented as testing-only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("origin: tls ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("origin: tls ca_file %s: no PEM certificates in it", t.CAFile)
		}
		c.RootCAs = roots
	}
	return c, nil
}
