package pop

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/outpost-cdn/outpost/cache"
	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop/fastpath"
)

// Signed URLs (a service's signed_urls): a request is answered only when
// its URL carries an expiry, optionally a client address prefix, and an
// HMAC-SHA256 over both and the URL's path and query made with one of the
// service's keys. The check runs before anything else looks at the
// request, the cache included, on every serving path (fastseam.go checks
// too). The signature parameters are not part of the cache key and do not
// reach the origin.
//
// The signed message is, each part followed by a newline but the last:
//
//	outpost-signed-url-v1
//	PATH      (escaped, as sent)
//	QUERY     (as sent, without the signature parameters)
//	EXPIRES   (Unix seconds, the outpost_exp value)
//	PREFIX    (the outpost_ip value, "" when the URL is not bound)
//
// and the signature is the MAC in unpadded base64url (outpost_sig).

// The query parameters of a signed URL.
const (
	SignExpiresParam = "outpost_exp" // Unix seconds after which the URL is refused
	SignIPParam      = "outpost_ip"  // optional: the client address prefix it is bound to
	SignatureParam   = "outpost_sig" // HMAC-SHA256, unpadded base64url
)

// signParams are the parameters the cache key and the origin never see.
var signParams = []string{SignExpiresParam, SignIPParam, SignatureParam}

const signVersion = "outpost-signed-url-v1"

// signReason is why a signed URL was refused; signOK when it was not.
type signReason uint8

const (
	signOK        signReason = iota
	signMissing              // no signature parameters
	signMalformed            // a parameter that does not parse, or given twice
	signExpired              // past its expiry
	signIP                   // the client is outside the bound prefix
	signBad                  // no key makes this signature: tampered or a wrong key
	numSignReasons
)

// String is the reason's label in /metrics and its Cache-Status detail
// in the access log.
func (r signReason) String() string {
	return [...]string{"ok", "missing", "malformed", "expired", "ip", "signature"}[r]
}

// signer checks a service's signed URLs.
type signer struct {
	keys [][]byte
}

// newSigner returns the checker of c, or nil when the service needs no
// signatures.
func newSigner(c config.SignedURLs) *signer {
	if !c.Enabled() {
		return nil
	}
	s := &signer{}
	for _, k := range c.Keys {
		s.keys = append(s.keys, []byte(k))
	}
	return s
}

// check verifies a request's URL, given its escaped path and raw query,
// for a client at client (invalid when unknown). It returns the query
// without the signature parameters.
func (s *signer) check(path, rawQuery string, client netip.Addr, now time.Time) (signReason, string) {
	var exp, ip, sig string
	var seen [3]bool
	var rest []string
	malformed := false
	for member := range strings.SplitSeq(rawQuery, "&") {
		name, value, _ := strings.Cut(member, "=")
		i := -1
		switch name {
		case SignExpiresParam:
			i, exp = 0, value
		case SignIPParam:
			i, ip = 1, value
		case SignatureParam:
			i, sig = 2, value
		}
		if i < 0 {
			if member != "" {
				rest = append(rest, member)
			}
			continue
		}
		if seen[i] {
			malformed = true
		}
		seen[i] = true
	}
	query := strings.Join(rest, "&")
	switch {
	case !seen[0] && !seen[2]:
		return signMissing, query
	case malformed || !seen[0] || !seen[2]:
		return signMalformed, query
	}
	expires, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || expires < 0 {
		return signMalformed, query
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(mac) != sha256.Size {
		return signMalformed, query
	}
	var prefix netip.Prefix
	if seen[1] {
		unescaped, err := url.QueryUnescape(ip)
		if err == nil {
			prefix, err = netip.ParsePrefix(unescaped)
		}
		if err != nil {
			return signMalformed, query
		}
		ip = unescaped
	}
	// Every key is tried, each compared in constant time: which key
	// matched, or how much of a MAC did, leaks nothing.
	ok := false
	for _, k := range s.keys {
		if hmac.Equal(mac, signMAC(k, path, query, exp, ip)) {
			ok = true
		}
	}
	switch {
	case !ok:
		return signBad, query
	case now.Unix() > expires:
		return signExpired, query
	case seen[1] && (!client.IsValid() || !prefix.Contains(client.Unmap())):
		return signIP, query
	}
	return signOK, query
}

// signMAC is the MAC of one signed URL under key.
func signMAC(key []byte, path, query, expires, prefix string) []byte {
	m := hmac.New(sha256.New, key)
	for _, part := range []string{signVersion, path, query, expires} {
		io.WriteString(m, part)
		m.Write([]byte{'\n'})
	}
	io.WriteString(m, prefix)
	return m.Sum(nil)
}

// SignURL returns rawURL signed with key: valid until expires and, when
// prefix is valid, only for clients within it. The URL's own query is
// kept as it is, the signature parameters appended; a URL that already
// carries them is an error. It is what `outpost sign` prints.
func SignURL(rawURL, key string, expires time.Time, prefix netip.Prefix) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("pop: sign: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("pop: sign: %q is not an absolute URL", rawURL)
	}
	if u.Fragment != "" || u.RawFragment != "" {
		return "", errors.New("pop: sign: a URL with a fragment would be sent without it; leave it out")
	}
	for member := range strings.SplitSeq(u.RawQuery, "&") {
		name, _, _ := strings.Cut(member, "=")
		for _, p := range signParams {
			if name == p {
				return "", fmt.Errorf("pop: sign: the URL already has %s", p)
			}
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
		u.Path = "/"
	}
	var query []string
	for member := range strings.SplitSeq(u.RawQuery, "&") {
		if member != "" {
			query = append(query, member)
		}
	}
	q := strings.Join(query, "&")
	exp := strconv.FormatInt(expires.Unix(), 10)
	ip := ""
	if prefix.IsValid() {
		ip = prefix.Masked().String()
	}
	mac := signMAC([]byte(key), path, q, exp, ip)
	params := q
	if params != "" {
		params += "&"
	}
	params += SignExpiresParam + "=" + exp
	if ip != "" {
		params += "&" + SignIPParam + "=" + url.QueryEscape(ip)
	}
	params += "&" + SignatureParam + "=" + base64.RawURLEncoding.EncodeToString(mac)
	u.RawQuery = params
	return u.String(), nil
}

// signCounters count the signed-URL refusals of one service, by reason.
type signCounters [numSignReasons]atomic.Uint64

// checkSigned verifies r's URL when svc requires signatures. On success
// the signature parameters are taken out of r's query (so neither the
// cache key nor the origin sees them) and it returns true; otherwise it
// answers 403 with a body that says nothing of why, and returns false.
// The reason goes to /metrics and to the access log's cache_status
// (Cache-Status detail=signature-REASON), set after the response went
// out, so the client never sees it.
func (p *PoP) checkSigned(w http.ResponseWriter, r *http.Request, svc *service) bool {
	reason, query := svc.signer.check(r.URL.EscapedPath(), r.URL.RawQuery, clientAddr(r), p.now())
	if reason == signOK {
		r.URL.RawQuery = query
		r.URL.ForceQuery = false
		return true
	}
	svc.edge.signDenied[reason].Add(1)
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	p.plainError(w, r, svc, http.StatusForbidden, cache.Status{Fwd: cache.FwdBypass, Detail: "forbidden"}, "outpost: Forbidden\n")
	// Headers changed after the response was written are not sent: this
	// one is for the access log's record only.
	h.Set("Cache-Status", cache.Status{Fwd: cache.FwdBypass, Detail: "signature-" + reason.String()}.Format(p.statusName))
	return false
}

// clientAddr is the client's address, invalid when r has none.
func clientAddr(r *http.Request) netip.Addr {
	a, _ := netip.ParseAddr(clientIP(r))
	return a
}

// fastSigned reports whether the fast path may answer r for svc, which
// requires signed URLs: only when its signature checks out. It returns
// the target without the signature parameters, as net/http's requests
// are logged. The key the fast path computes leaves them out (keyDrop).
func fastSigned(svc *service, s *fastpath.Sender, r *fastpath.Request, now time.Time) (string, bool) {
	var client netip.Addr
	if ap, err := netip.ParseAddrPort(s.RemoteAddr().String()); err == nil {
		client = ap.Addr()
	}
	reason, query := svc.signer.check(string(r.Path), string(r.Query), client, now)
	if query != "" {
		return string(r.Path) + "?" + query, reason == signOK
	}
	return string(r.Path), reason == signOK
}
