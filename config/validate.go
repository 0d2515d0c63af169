package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file checks single values: names, hostnames, URLs, addresses and
// tokens. Each check returns an error that reads well after "KEY: ".

// nameRE is what service and PoP names look like: safe in URLs, metric
// labels, file names and DNS labels.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// normalizeHost checks that h is a DNS name or an IP literal and returns it
// as the PoP compares Host headers: lowercased, without a trailing dot, IPv6
// without brackets and in canonical form.
func normalizeHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty hostname")
	}
	inner, bracketed := strings.CutPrefix(h, "[")
	if bracketed {
		inner, bracketed = strings.CutSuffix(inner, "]")
	}
	if a, err := netip.ParseAddr(inner); err == nil {
		switch {
		case a.Zone() != "":
			return "", fmt.Errorf("hostname %q: IPv6 zones are not supported", h)
		case bracketed && !a.Is6():
			return "", fmt.Errorf("hostname %q: only IPv6 addresses go in brackets", h)
		}
		return a.String(), nil
	}
	if bracketed || strings.Contains(h, ":") {
		if _, _, err := net.SplitHostPort(h); err == nil {
			return "", fmt.Errorf("hostname %q must not include a port", h)
		}
		return "", fmt.Errorf("hostname %q is not a valid IPv6 address", h)
	}
	name := strings.TrimSuffix(strings.ToLower(h), ".")
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("hostname %q: %w", h, err)
	}
	return name, nil
}

// normalizeZone checks that z is a DNS name and returns it lowercased without
// a trailing dot.
func normalizeZone(z string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(z), ".")
	if err := checkDNSName(name); err != nil {
		return "", fmt.Errorf("zone %q: %w", z, err)
	}
	return name, nil
}

// checkDNSName checks a lowercased DNS name without a trailing dot
// (RFC 1123 host name syntax).
func checkDNSName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 characters")
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label (a leading dot or two dots in a row)")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %.20q… is longer than 63 characters", l)
		}
		for _, c := range l {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-':
			case c == '*':
				return errors.New("wildcards are not supported")
			case c >= utf8.RuneSelf:
				return fmt.Errorf("invalid character %q (write internationalized names in their xn-- form)", c)
			default:
				return fmt.Errorf("invalid character %q (want letters, digits, '-' and '.')", c)
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with '-'", l)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return errors.New("not a valid IP address, and a DNS name cannot end in a numeric label")
	}
	return nil
}

// parseOriginURL parses an origin server URL: http or https, a host, an
// optional port and path, nothing else.
func parseOriginURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL %q: %w", s, err)
	}
	switch {
	case u.Scheme == "":
		return nil, fmt.Errorf("URL %q has no scheme (want http:// or https://)", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme %q not supported (want http or https)", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("URL %q has no host (want %s://host[:port][/path])", s, u.Scheme)
	case u.User != nil:
		return nil, fmt.Errorf("URL %q must not contain user info", s)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("URL %q must not have a query", s)
	case strings.Contains(s, "#"):
		return nil, fmt.Errorf("URL %q must not have a fragment", s)
	}
	if _, err := normalizeHost(u.Hostname()); err != nil {
		return nil, fmt.Errorf("URL %q: %w", s, err)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("URL %q: port %s out of range (want 1..65535)", s, p)
		}
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

// normalizeHostHeader checks a Host header value to send to an origin:
// a hostname or IP literal with an optional port (RFC 9110 §7.2). It
// returns it lowercased.
func normalizeHostHeader(s string) (string, error) {
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q out of range (want 1..65535)", s, p)
		}
	}
	h, err := normalizeHost(host)
	if err != nil {
		return "", err
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]" // an IPv6 literal
	}
	if port != "" {
		h += ":" + port
	}
	return h, nil
}

// checkProbePath checks the path of a health check or load poll: an
// absolute path with an optional query, nothing else.
func checkProbePath(s string) error {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
		return fmt.Errorf("path %q must start with a single / (e.g. /healthz)", s)
	}
	u, err := url.ParseRequestURI(s)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("invalid path %q: %w", s, err)
	}
	if strings.Contains(s, "#") || u.Host != "" {
		return fmt.Errorf("path %q must be a path and optional query only", s)
	}
	return nil
}

// maxCAFile bounds a CA file: 1 MiB of PEM is far more than any CA bundle.
const maxCAFile = 1 << 20

// checkCAFile resolves name (relative to the config file's directory) and
// checks that it is a regular file holding at least one PEM certificate.
// It returns the resolved path.
func (d *decoder) checkCAFile(name string) (string, error) {
	if name == "" {
		return "", errors.New("ca_file must not be empty (remove the key to use the system roots)")
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the CA file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return "", fmt.Errorf("cannot read the CA file: %w", err)
	} else if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot read the CA file: %w", err)
	case len(data) > maxCAFile:
		return "", fmt.Errorf("%s is larger than %s; a CA file holds a few certificates", path, formatSize(maxCAFile))
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		return "", fmt.Errorf("%s holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)", path)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return path, nil
}

// hostPort is a listen address with its host normalized.
type hostPort struct {
	host string // "" means all addresses
	port uint16 // 0 means any free port
}

// parseHostPort checks a listen address "host:port". The host may be empty
// (all addresses), an IP address or a DNS name; the port is a number.
func parseHostPort(s string) (hostPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		msg := err.Error()
		if ae, ok := errors.AsType[*net.AddrError](err); ok {
			msg = ae.Err
		}
		return hostPort{}, fmt.Errorf("invalid address %q: %s (want host:port, e.g. 127.0.0.1:8080 or :8080)", s, msg)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return hostPort{}, fmt.Errorf("invalid address %q: port %q must be a number in 0..65535", s, port)
	}
	if host != "" {
		if host, err = normalizeHost(host); err != nil {
			return hostPort{}, fmt.Errorf("invalid address %q: %w", s, err)
		}
	}
	return hostPort{host: host, port: uint16(p)}, nil
}

// String returns the address in normal form.
func (a hostPort) String() string {
	return net.JoinHostPort(a.host, strconv.Itoa(int(a.port)))
}

// clashes reports whether a and b cannot both be listened on: same fixed
// port, and the same host or one of them all addresses.
func (a hostPort) clashes(b hostPort) bool {
	if a.port != b.port || a.port == 0 {
		return false
	}
	return a.host == b.host || a.wildcard() || b.wildcard()
}

// wildcard reports whether a listens on all addresses.
func (a hostPort) wildcard() bool {
	if a.host == "" {
		return true
	}
	ip, err := netip.ParseAddr(a.host)
	return err == nil && ip.IsUnspecified()
}

// checkToken checks a bearer token: it travels in an Authorization header,
// so it must be printable ASCII without spaces.
func checkToken(t string) error {
	if t == "" {
		return errors.New("token must not be empty")
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return errors.New("token must be printable ASCII without spaces (it is sent in an Authorization header)")
		}
	}
	return nil
}
