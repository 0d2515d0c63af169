package dnsgeo

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// staticRecords is a dns.records section with every type, a delegation
// with glue, CNAMEs into and out of the zone, and a TXT longer than one
// character-string.
var staticRecords = `  health: {interval: 1h}
  records:
    - {name: "@", type: TXT, value: "v=spf1 -all"}
    - {name: "@", type: CAA, value: '0 issue "letsencrypt.org"'}
    - {name: "@", type: MX, value: "10 mx.example.net."}
    - {name: api, type: A, value: 192.0.2.10, ttl: 5m}
    - {name: api, type: AAAA, value: "2001:db8::10"}
    - {name: www, type: CNAME, value: demo}
    - {name: alias, type: CNAME, value: api}
    - {name: ext, type: CNAME, value: cdn.example.net.}
    - {name: sub, type: NS, value: ns1.sub}
    - {name: sub, type: NS, value: ns.example.net.}
    - {name: ns1.sub, type: A, value: 192.0.2.53}
    - {name: long, type: TXT, value: "` + strings.Repeat("x", 300) + `"}
    - {name: quote, type: TXT, value: 'say "hi" \ back'}
  acme: {token: 0123456789abcdef0123456789abcdef, max_records: 3, ttl: 10s, max_value_size: 64}`

// TestStaticRecords checks dns.records over UDP and TCP: each type
// answered as configured, CNAMEs followed inside the zone (RFC 1034
// §4.3.2) into geo answers too, referrals for delegated names (RFC 1034
// §4.3.2 step 3b) with their glue, and NODATA and NXDOMAIN around them.
func TestStaticRecords(t *testing.T) {
	ts := startServer(t, labConfig(t, staticRecords, nil, labNetworks))
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		subnet string
		rcode  int
		aa     bool
		answer []string // each record's text, without the header
		ns     int      // records in the authority section
		extra  []string // additional records but OPT
		scope  int      // ECS scope when subnet is set
	}{
		{name: "RFC 1035 §3.3.14: TXT at the apex", qname: "cdn.example.", qtype: dns.TypeTXT, aa: true, answer: []string{`"v=spf1 -all"`}},
		{name: "RFC 8659 §4.1: CAA at the apex", qname: "cdn.example.", qtype: dns.TypeCAA, aa: true, answer: []string{`0 issue "letsencrypt.org"`}},
		{name: "RFC 1035 §3.3.9: MX at the apex", qname: "cdn.example.", qtype: dns.TypeMX, aa: true, answer: []string{"10 mx.example.net."}},
		{name: "RFC 1035 §3.4.1: A of a name that is not a service", qname: "api.cdn.example.", qtype: dns.TypeA, aa: true, answer: []string{"192.0.2.10"}},
		{name: "RFC 3596: AAAA of a name that is not a service", qname: "api.cdn.example.", qtype: dns.TypeAAAA, aa: true, answer: []string{"2001:db8::10"}},
		{name: "RFC 2308 §2.2: NODATA for a type a static name lacks", qname: "api.cdn.example.", qtype: dns.TypeMX, aa: true, ns: 1},
		{name: "RFC 8482: ANY of a static name: one RRset", qname: "api.cdn.example.", qtype: dns.TypeANY, aa: true, answer: []string{"192.0.2.10"}},
		{name: "RFC 1034 §4.3.2: a CNAME to a service is followed into its geo answer", qname: "www.cdn.example.", qtype: dns.TypeA, subnet: "203.0.113.0/24", aa: true,
			answer: []string{"demo.cdn.example.", "127.0.0.13"}, scope: 24},
		{name: "RFC 1034 §4.3.2: a CNAME to a static name is followed", qname: "alias.cdn.example.", qtype: dns.TypeAAAA, aa: true, answer: []string{"api.cdn.example.", "2001:db8::10"}},
		{name: "RFC 1034 §4.3.2: a CNAME query gets the CNAME alone", qname: "www.cdn.example.", qtype: dns.TypeCNAME, aa: true, answer: []string{"demo.cdn.example."}},
		{name: "RFC 1034 §4.3.2: a CNAME out of the zone is not followed", qname: "ext.cdn.example.", qtype: dns.TypeA, aa: true, answer: []string{"cdn.example.net."}},
		{name: "RFC 2308 §2.2: a CNAME to a name without the type: NODATA after it", qname: "alias.cdn.example.", qtype: dns.TypeMX, aa: true, answer: []string{"api.cdn.example."}, ns: 1},
		{name: "RFC 1034 §4.3.2: a delegated name gets a referral with glue, not authoritative", qname: "www.sub.cdn.example.", qtype: dns.TypeA, aa: false,
			ns: 2, extra: []string{"192.0.2.53"}},
		{name: "RFC 1034 §4.3.2: the delegation point itself gets a referral", qname: "sub.cdn.example.", qtype: dns.TypeNS, aa: false, ns: 2, extra: []string{"192.0.2.53"}},
		{name: "RFC 1035 §3.3.14: a TXT of 300 bytes is two character-strings", qname: "long.cdn.example.", qtype: dns.TypeTXT, aa: true,
			answer: []string{`"` + strings.Repeat("x", 255) + `" "` + strings.Repeat("x", 45) + `"`}},
		{name: "RFC 1035 §3.3.14: quotes and backslashes in a TXT are kept", qname: "quote.cdn.example.", qtype: dns.TypeTXT, aa: true, answer: []string{`"say \"hi\" \\ back"`}},
		{name: "RFC 2308 §2.1: NXDOMAIN beside static names", qname: "nope.cdn.example.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError, aa: true, ns: 1},
		{name: "a service name keeps its geo answers", qname: "demo.cdn.example.", qtype: dns.TypeA, subnet: "198.51.100.0/24", aa: true, answer: []string{"127.0.0.11"}, scope: 24},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchange(t, proto, query(tt.qname, tt.qtype, tt.subnet, 1232))
				if r.Rcode != tt.rcode || r.Authoritative != tt.aa || r.Truncated {
					t.Fatalf("rcode %s AA %v TC %v, want %s AA %v", dns.RcodeToString[r.Rcode], r.Authoritative, r.Truncated, dns.RcodeToString[tt.rcode], tt.aa)
				}
				var got []string
				for _, rr := range r.Answer {
					got = append(got, strings.TrimPrefix(rr.String(), rr.Header().String()))
				}
				if strings.Join(got, "|") != strings.Join(tt.answer, "|") {
					t.Errorf("answer %q, want %q", got, tt.answer)
				}
				if len(r.Ns) != tt.ns {
					t.Errorf("authority %v, want %d records", r.Ns, tt.ns)
				}
				var extra []string
				for _, rr := range r.Extra {
					if rr.Header().Rrtype != dns.TypeOPT {
						extra = append(extra, strings.TrimPrefix(rr.String(), rr.Header().String()))
					}
				}
				if strings.Join(extra, "|") != strings.Join(tt.extra, "|") {
					t.Errorf("additional %q, want %q", extra, tt.extra)
				}
				if tt.subnet != "" {
					if e := replyECS(r); e == nil || int(e.SourceScope) != tt.scope {
						t.Errorf("ECS %v, want scope %d", e, tt.scope)
					}
				}
			})
		}
	}
}

// TestStaticRecordsReload checks that records come and go with a reload,
// as the rest of the file does.
func TestStaticRecordsReload(t *testing.T) {
	ts := startServer(t, labConfig(t, steady, nil, labNetworks))
	if r := ts.exchange(t, "udp", query("cdn.example.", dns.TypeTXT, "", 0)); len(r.Answer) != 0 {
		t.Fatalf("TXT before the reload: %v", r.Answer)
	}
	if err := ts.Reload(labConfig(t, staticRecords, nil, labNetworks)); err != nil {
		t.Fatal(err)
	}
	if r := ts.exchange(t, "udp", query("cdn.example.", dns.TypeTXT, "", 0)); len(r.Answer) != 1 {
		t.Fatalf("TXT after the reload: %v", r.Answer)
	}
	if err := ts.Reload(labConfig(t, steady, nil, labNetworks)); err != nil {
		t.Fatal(err)
	}
	if r := ts.exchange(t, "udp", query("api.cdn.example.", dns.TypeA, "", 0)); r.Rcode != dns.RcodeNameError {
		t.Fatalf("api after the records went: %v", r)
	}
}

// acmeCall posts req to the ACME endpoint op with the authorization
// header auth, and returns the status and body.
func acmeCall(t *testing.T, ts *testServer, op, auth string, req any) (int, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	hr, err := http.NewRequest("POST", ts.admin+"/acme/"+op, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		hr.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := new(bytes.Buffer)
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// TestACMEEndpoint checks the ACME DNS-01 endpoint row by row against a
// real server: the token (bearer, or Basic's password as lego's httpreq
// sends it), the names it takes (RFC 8555 §8.4: _acme-challenge, in the
// zone, not delegated), the bounds (max_records, max_value_size), the TTL,
// and that a value put is answered over DNS and gone once cleaned up.
// Rows run in order: each names the state it leaves.
func TestACMEEndpoint(t *testing.T) {
	ts := startServer(t, labConfig(t, staticRecords, nil, labNetworks))
	const token = "0123456789abcdef0123456789abcdef"
	bearer := "Bearer " + token
	basic := func(user, pass string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	txt := func(name string) []string {
		r := ts.exchange(t, "udp", query(name, dns.TypeTXT, "", 0))
		var out []string
		for _, rr := range r.Answer {
			if x, ok := rr.(*dns.TXT); ok {
				out = append(out, strings.Join(x.Txt, ""))
				if x.Hdr.Ttl != 10 {
					t.Errorf("TTL %d, want 10 (dns.acme.ttl)", x.Hdr.Ttl)
				}
			}
		}
		return out
	}
	const www = "_acme-challenge.www.cdn.example."
	steps := []struct {
		name   string
		op     string
		auth   string
		req    ACMERequest
		status int
		txt    []string // the TXT values of www after the step
	}{
		{"no token: 401", "present", "", ACMERequest{www, "v1"}, http.StatusUnauthorized, nil},
		{"a wrong token: 401", "present", "Bearer nope", ACMERequest{www, "v1"}, http.StatusUnauthorized, nil},
		{"RFC 8555 §8.4: present with the bearer token", "present", bearer, ACMERequest{www, "v1"}, http.StatusOK, []string{"v1"}},
		{"the same value again: no change", "present", bearer, ACMERequest{www, "v1"}, http.StatusOK, []string{"v1"}},
		{"a second value at the name (a wildcard and its base)", "present", basic("lego", token), ACMERequest{"_ACME-Challenge.WWW.cdn.example", "v2"}, http.StatusOK, []string{"v1", "v2"}},
		{"not an _acme-challenge name: 400", "present", bearer, ACMERequest{"www.cdn.example.", "x"}, http.StatusBadRequest, []string{"v1", "v2"}},
		{"outside the zone: 400", "present", bearer, ACMERequest{"_acme-challenge.example.com.", "x"}, http.StatusBadRequest, []string{"v1", "v2"}},
		{"below a delegation: 400", "present", bearer, ACMERequest{"_acme-challenge.sub.cdn.example.", "x"}, http.StatusBadRequest, []string{"v1", "v2"}},
		{"a value longer than max_value_size: 400", "present", bearer, ACMERequest{www, strings.Repeat("v", 65)}, http.StatusBadRequest, []string{"v1", "v2"}},
		{"a third record elsewhere", "present", bearer, ACMERequest{"_acme-challenge.cdn.example.", "apex"}, http.StatusOK, []string{"v1", "v2"}},
		{"a fourth: over max_records, 507", "present", bearer, ACMERequest{"_acme-challenge.api.cdn.example.", "x"}, http.StatusInsufficientStorage, []string{"v1", "v2"}},
		{"cleanup of one value", "cleanup", bearer, ACMERequest{www, "v1"}, http.StatusOK, []string{"v2"}},
		{"cleanup needs the token too", "cleanup", "", ACMERequest{www, "v2"}, http.StatusUnauthorized, []string{"v2"}},
		{"cleanup of the last value", "cleanup", bearer, ACMERequest{www, "v2"}, http.StatusOK, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			status, body := acmeCall(t, ts, st.op, st.auth, st.req)
			if status != st.status {
				t.Fatalf("status %d (%s), want %d", status, body, st.status)
			}
			if got := txt(www); strings.Join(got, "|") != strings.Join(st.txt, "|") {
				t.Errorf("TXT %q, want %q", got, st.txt)
			}
		})
	}
	if r := ts.exchange(t, "udp", query(www, dns.TypeTXT, "", 0)); r.Rcode != dns.RcodeNameError {
		t.Errorf("after cleanup: %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// RFC 8020: the name above a challenge record exists, though nothing
	// else made it.
	const deep = "_acme-challenge.x.y.cdn.example."
	if status, body := acmeCall(t, ts, "cleanup", bearer, ACMERequest{"_acme-challenge.cdn.example.", "apex"}); status != http.StatusOK {
		t.Fatalf("cleanup: %d %s", status, body)
	}
	if status, body := acmeCall(t, ts, "present", bearer, ACMERequest{deep, "deep"}); status != http.StatusOK {
		t.Fatalf("present: %d %s", status, body)
	}
	for _, name := range []string{"x.y.cdn.example.", "y.cdn.example."} {
		if r := ts.exchange(t, "udp", query(name, dns.TypeA, "", 0)); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Errorf("RFC 8020: %s above a challenge record: %s %v, want NODATA", name, dns.RcodeToString[r.Rcode], r.Answer)
		}
	}
	acmeCall(t, ts, "present", bearer, ACMERequest{"_acme-challenge.cdn.example.", "apex"})
	if got := txt("_acme-challenge.cdn.example."); len(got) != 1 || got[0] != "apex" {
		t.Errorf("apex challenge %q", got)
	}
}

// TestACMEEndpointOff checks that the endpoint answers 404 without
// dns.acme.
func TestACMEEndpointOff(t *testing.T) {
	ts := startServer(t, labConfig(t, steady, nil, labNetworks))
	if status, _ := acmeCall(t, ts, "present", "Bearer x", ACMERequest{"_acme-challenge.cdn.example.", "v"}); status != http.StatusNotFound {
		t.Errorf("status %d, want 404", status)
	}
}
