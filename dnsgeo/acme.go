package dnsgeo

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The ACME endpoint (dns.acme): an ACME client proving control of a name
// with a DNS-01 challenge (RFC 8555 §8.4) puts a TXT record at
// _acme-challenge.NAME and removes it once validated. The endpoint speaks
// what lego's "httpreq" provider sends: POST /acme/present and POST
// /acme/cleanup with {"fqdn": "_acme-challenge.www.cdn.example.",
// "value": "…"}, authenticated by the bearer token of dns.acme (or HTTP
// Basic with the token as the password, as httpreq sends it). The
// records live in memory, beside the zone: they survive reloads, not
// restarts, which an ACME order does not outlive.

// acmeLifetime is how long a challenge record stays when no client
// removes it (one that died mid-order): far longer than a validation.
const acmeLifetime = time.Hour

// acmeStore holds the challenge records. Writers copy the map and swap
// it in; queries read it without a lock.
type acmeStore struct {
	now  func() time.Time
	mu   sync.Mutex // serializes writers
	recs atomic.Pointer[map[string][]acmeValue]
	ents atomic.Pointer[map[string]bool] // the names above them: empty non-terminals unless the zone has them
}

// acmeValue is one challenge record's text and when it was put.
type acmeValue struct {
	text  string
	added time.Time
}

func newACMEStore(now func() time.Time) *acmeStore {
	a := &acmeStore{now: now}
	a.store(map[string][]acmeValue{})
	return a
}

// has reports whether name (lowercased, fully qualified) has challenge
// records.
func (a *acmeStore) has(name string) bool {
	_, ok := (*a.recs.Load())[name]
	return ok
}

// above reports whether name (lowercased, fully qualified) is above a
// name with challenge records: it exists then, as an empty non-terminal
// at least (RFC 8020).
func (a *acmeStore) above(name string) bool { return (*a.ents.Load())[name] }

// store swaps in recs and the names above them.
func (a *acmeStore) store(recs map[string][]acmeValue) {
	ents := make(map[string]bool)
	for n := range recs {
		for i := strings.IndexByte(n, '.'); i >= 0 && i < len(n)-1; i = strings.IndexByte(n, '.') {
			n = n[i+1:]
			ents[n] = true
		}
	}
	a.recs.Store(&recs)
	a.ents.Store(&ents)
}

// appendTXT appends name's live challenge records to rrs as TXT records
// owned by owner.
func (a *acmeStore) appendTXT(rrs []dns.RR, name, owner string, ttl uint32) []dns.RR {
	vals := (*a.recs.Load())[name]
	if len(vals) == 0 {
		return rrs
	}
	now := a.now()
	for _, v := range vals {
		if now.Sub(v.added) < acmeLifetime {
			rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: txtStrings(v.text)})
		}
	}
	return rrs
}

// errACMEFull is returned by present when max records are held.
var errACMEFull = errors.New("dnsgeo: the ACME challenge records are at dns.acme.max_records")

// present adds the record name TXT value (again, it is a no-op), after
// dropping records older than acmeLifetime. It returns how many values
// name holds.
func (a *acmeStore) present(name, value string, max int) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	next := make(map[string][]acmeValue, len(*a.recs.Load())+1)
	total := 0
	for n, vals := range *a.recs.Load() {
		vals = slices.DeleteFunc(slices.Clone(vals), func(v acmeValue) bool { return now.Sub(v.added) >= acmeLifetime })
		if len(vals) > 0 {
			next[n] = vals
			total += len(vals)
		}
	}
	if slices.ContainsFunc(next[name], func(v acmeValue) bool { return v.text == value }) {
		a.store(next)
		return len(next[name]), nil
	}
	if total >= max {
		a.store(next)
		return 0, errACMEFull
	}
	next[name] = append(next[name], acmeValue{text: value, added: now})
	a.store(next)
	return len(next[name]), nil
}

// cleanup removes the record name TXT value; it reports how many values
// name still holds.
func (a *acmeStore) cleanup(name, value string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	next := maps.Clone(*a.recs.Load())
	vals := slices.DeleteFunc(slices.Clone(next[name]), func(v acmeValue) bool { return v.text == value })
	if len(vals) == 0 {
		delete(next, name)
	} else {
		next[name] = vals
	}
	a.store(next)
	return len(vals)
}

// count returns the records held.
func (a *acmeStore) count() int {
	n := 0
	for _, vals := range *a.recs.Load() {
		n += len(vals)
	}
	return n
}

// ACMERequest is the body of POST /acme/present and /acme/cleanup (lego's
// httpreq provider, default mode).
type ACMERequest struct {
	FQDN  string `json:"fqdn"`
	Value string `json:"value"`
}

// ACMEResult is their answer.
type ACMEResult struct {
	FQDN string `json:"fqdn"`
	// Values is how many challenge values the name holds now.
	Values int `json:"values"`
}

// maxACMEBody bounds a request body.
const maxACMEBody = 8 << 10

// serveACME handles POST /acme/present (present is true) and
// /acme/cleanup.
func (s *Server) serveACME(present bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := s.state.Load()
		cfg := st.cfg.ACME
		if !cfg.Enabled() {
			http.Error(w, "the ACME endpoint is off: set dns.acme.token_file (or $OUTPOST_DNS_ACME_TOKEN)", http.StatusNotFound)
			return
		}
		if !acmeAuthorized(r, cfg.Token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="outpost-dns"`)
			http.Error(w, "a valid bearer token (dns.acme) is required", http.StatusUnauthorized)
			s.metrics.acme[acmeUnauthorized].Add(1)
			return
		}
		var req ACMERequest
		body, err := io.ReadAll(io.LimitReader(r.Body, maxACMEBody+1))
		switch {
		case err != nil:
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		case len(body) > maxACMEBody:
			http.Error(w, fmt.Sprintf("the body is larger than %d bytes", maxACMEBody), http.StatusRequestEntityTooLarge)
			return
		}
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, `want JSON {"fqdn": "_acme-challenge.NAME.", "value": "…"}: `+err.Error(), http.StatusBadRequest)
			s.metrics.acme[acmeBad].Add(1)
			return
		}
		name, err := st.acmeName(req.FQDN)
		if err == nil && (req.Value == "" || len(req.Value) > cfg.MaxValueSize || strings.ContainsFunc(req.Value, func(r rune) bool { return r < ' ' || r > '~' })) {
			err = fmt.Errorf("value: want 1..%d printable ASCII characters (dns.acme.max_value_size)", cfg.MaxValueSize)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			s.metrics.acme[acmeBad].Add(1)
			return
		}
		res := ACMEResult{FQDN: name}
		if present {
			res.Values, err = s.acme.present(name, req.Value, cfg.MaxRecords)
			if err != nil {
				http.Error(w, fmt.Sprintf("%v (%d): remove some first", err, cfg.MaxRecords), http.StatusInsufficientStorage)
				s.metrics.acme[acmeFull].Add(1)
				return
			}
			s.metrics.acme[acmePresented].Add(1)
			s.log.Info("acme challenge record put", "name", name)
		} else {
			res.Values = s.acme.cleanup(name, req.Value)
			s.metrics.acme[acmeCleaned].Add(1)
			s.log.Info("acme challenge record removed", "name", name)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(res)
	}
}

// acmeAuthorized reports whether r carries token as a bearer token, or
// as the password of HTTP Basic authentication.
func acmeAuthorized(r *http.Request, token string) bool {
	got := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		got = strings.TrimSpace(h[7:])
	} else if _, pass, ok := r.BasicAuth(); ok {
		got = pass
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// acmeName checks that fqdn is an _acme-challenge name in the zone, not
// delegated, and returns it lowercased and fully qualified.
func (st *state) acmeName(fqdn string) (string, error) {
	name := dns.Fqdn(strings.ToLower(strings.TrimSpace(fqdn)))
	if _, ok := dns.IsDomainName(name); !ok || strings.Contains(name, "\\\\") || len(name) > 254 {
		return "", fmt.Errorf("fqdn %q is not a domain name", fqdn)
	}
	if !strings.HasPrefix(name, "_acme-challenge.") {
		return "", fmt.Errorf("fqdn %q: only _acme-challenge names may be put (RFC 8555 §8.4)", fqdn)
	}
	z := st.zone
	if !z.contains(name) || name == z.name {
		return "", fmt.Errorf("fqdn %q is outside zone %s", fqdn, strings.TrimSuffix(z.name, "."))
	}
	if d := z.delegation(name); d != "" {
		return "", fmt.Errorf("fqdn %q is below %s, which is delegated to other name servers", fqdn, d)
	}
	if z.static.sets[name][dns.TypeCNAME] != nil {
		return "", fmt.Errorf("fqdn %q has a CNAME in dns.records", fqdn)
	}
	return name, nil
}
