package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Protocol versions as responses report them (http.Response.Proto).
const (
	protoHTTP1 = "HTTP/1.1"
	protoHTTP2 = "HTTP/2.0"
	protoHTTP3 = "HTTP/3.0"
)

// stdClient is the HTTP/2 and HTTP/3 client: an http.RoundTripper of its
// own (net/http's Transport for HTTP/2 over TLS or h2c, quic-go's
// http3.Transport for HTTP/3) with one connection, to one address, and one
// request at a time. Unlike h1Client it allocates per request: the
// transports do.
type stdClient struct {
	// newRT makes a round tripper whose connections go to addr, and the
	// function that closes it.
	newRT func(addr string) (http.RoundTripper, func())
	addr  string
	rt    http.RoundTripper
	stop  func()

	scheme string
	host   string // the Host header and the URL's authority
	method string
	header http.Header
	buf    []byte
}

var _ client = (*stdClient)(nil)

// newStdClient makes a client of the given protocol (ProtocolHTTP2 or
// ProtocolHTTP3) for requests with the given method, URL scheme, Host and
// extra header lines, to addr. tlsConfig carries the server name and the
// verification setting; it is nil for h2c.
func newStdClient(proto, addr, scheme, method, host string, header []string, tlsConfig *tls.Config, timeout time.Duration) *stdClient {
	h := http.Header{"User-Agent": {"outpost-bench"}}
	for _, line := range header {
		name, value, _ := strings.Cut(line, ":")
		h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	c := &stdClient{addr: addr, scheme: scheme, host: host, method: method, header: h}
	switch proto {
	case ProtocolHTTP3:
		c.newRT = func(addr string) (http.RoundTripper, func()) { return newH3Transport(addr, tlsConfig) }
	default:
		c.newRT = func(addr string) (http.RoundTripper, func()) { return newH2Transport(addr, tlsConfig, timeout) }
	}
	return c
}

// newH2Transport makes a net/http Transport speaking HTTP/2 to addr: by
// ALPN over TLS (offering HTTP/1.1 too, so that a server without HTTP/2
// shows up as responses on the wrong protocol, not as failed handshakes),
// or h2c with prior knowledge when tlsConfig is nil.
func newH2Transport(addr string, tlsConfig *tls.Config, timeout time.Duration) (http.RoundTripper, func()) {
	dialer := &net.Dialer{Timeout: timeout}
	var p http.Protocols
	if tlsConfig != nil {
		p.SetHTTP1(true)
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	if tlsConfig != nil {
		tlsConfig = tlsConfig.Clone() // the Transport adds its ALPN ids to it
	}
	tr := &http.Transport{
		// The URL's host names the service (Host, SNI); the connection
		// goes to the chosen address.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: timeout,
		ForceAttemptHTTP2:   true,
		Protocols:           &p,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 1,
	}
	return tr, tr.CloseIdleConnections
}

// newH3Transport makes an http3.Transport whose QUIC connections go to
// addr, each on its own UDP socket.
func newH3Transport(addr string, tlsConfig *tls.Config) (http.RoundTripper, func()) {
	tr := &http3.Transport{
		TLSClientConfig:    tlsConfig,
		DisableCompression: true,
		Dial: func(ctx context.Context, _ string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			return quic.DialAddrEarly(ctx, addr, tlsCfg, cfg)
		},
	}
	return tr, func() { tr.Close() }
}

func (c *stdClient) setAddr(addr string) {
	if addr != c.addr {
		c.close()
		c.addr = addr
	}
}

func (c *stdClient) close() {
	if c.stop != nil {
		c.stop()
		c.rt, c.stop = nil, nil
	}
}

func (c *stdClient) do(ctx context.Context, path []byte, deadline time.Time, resp *response) error {
	u, err := url.ParseRequestURI(string(path))
	if err != nil {
		return failure(errWrite, fmt.Errorf("request target %q: %w", path, err))
	}
	u.Scheme, u.Host = c.scheme, c.host
	if c.rt == nil {
		c.rt, c.stop = c.newRT(c.addr)
	}
	rctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	req := (&http.Request{
		Method: c.method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: c.header, Host: c.host,
	}).WithContext(rctx)
	resp.addr = c.addr
	r, err := c.rt.RoundTrip(req)
	if err != nil {
		return failure(roundTripKind(err), err)
	}
	defer r.Body.Close()
	resp.status = r.StatusCode
	resp.proto = r.Proto
	if vs := r.Header.Values("Cache-Status"); len(vs) > 0 {
		resp.cacheStatus = append(resp.cacheStatus[:0], vs[len(vs)-1]...)
	}
	if c.buf == nil {
		c.buf = make([]byte, bodyChunk)
	}
	for {
		n, err := r.Body.Read(c.buf)
		resp.bodyBytes += int64(n)
		if resp.body != nil && n > 0 {
			resp.body.Write(c.buf[:n])
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return failure(errRead, err)
		}
	}
}

// roundTripKind tells the failures of a round trip apart as far as the
// transports' errors allow: dialing, TLS, or the exchange itself.
func roundTripKind(err error) errKind {
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return errConnect
	}
	var (
		verify  *tls.CertificateVerificationError
		alert   tls.AlertError
		header  tls.RecordHeaderError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
	)
	if errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &header) ||
		errors.As(err, &unknown) || errors.As(err, &host) {
		return errTLS
	}
	if te, ok := errors.AsType[*quic.TransportError](err); ok && te.ErrorCode.IsCryptoError() {
		return errTLS
	}
	if _, ok := errors.AsType[*quic.IdleTimeoutError](err); ok {
		return errConnect // no answer to the QUIC handshake
	}
	if _, ok := errors.AsType[*quic.HandshakeTimeoutError](err); ok {
		return errConnect
	}
	return errRead
}
