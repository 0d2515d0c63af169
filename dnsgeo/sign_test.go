package dnsgeo

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/dnsgeo/dnssec"
)

// zoneKeys makes keys for cdn.example into dir: seps says which are KSKs
// (or a CSK), alg their algorithm.
func zoneKeys(t testing.TB, dir string, alg uint8, seps ...bool) []*dnssec.Key {
	t.Helper()
	var keys []*dnssec.Key
	for _, sep := range seps {
		k, err := dnssec.Generate("cdn.example", alg, sep)
		if err != nil {
			t.Fatal(err)
		}
		if k.File, err = k.WriteFiles(dir); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// signedConfig is the lab with staticRecords and a dnssec section naming
// keys, those in published published only.
func signedConfig(t testing.TB, keys []*dnssec.Key, published ...*dnssec.Key) *config.Config {
	t.Helper()
	var b strings.Builder
	b.WriteString(staticRecords + "\n    - {name: big, type: TXT, value: \"" + strings.Repeat("b", 400) + "\"}\n")
	b.WriteString("  dnssec:\n    keys:\n")
	for _, k := range keys {
		state := "active"
		if slices.Contains(published, k) {
			state = "published"
		}
		fmt.Fprintf(&b, "      - {file: %q, state: %s}\n", k.File, state)
	}
	// staticRecords ends inside dns.acme's line; records continue above
	y := strings.Replace(b.String(), "  acme: {token: 0123456789abcdef0123456789abcdef, max_records: 3, ttl: 10s, max_value_size: 64}\n    - {name: big",
		"    - {name: big", 1)
	y = strings.Replace(y, "  dnssec:", "  acme: {token: 0123456789abcdef0123456789abcdef, max_records: 3, ttl: 10s, max_value_size: 64}\n  dnssec:", 1)
	return labConfig(t, y, nil, labNetworks)
}

// validator checks replies as a validating resolver does (RFC 4035 §5),
// from a trust anchor: the DS of a KSK, as the parent zone would hold it.
type validator struct {
	keys map[uint16]*dns.DNSKEY // the zone's DNSKEY RRset, once validated
	now  time.Time
}

// newValidator fetches the DNSKEY RRset over TCP and validates it with
// the key the DS points to.
func newValidator(t *testing.T, ts *testServer, anchor *dns.DS) *validator {
	t.Helper()
	r := ts.exchange(t, "tcp", doQuery("cdn.example.", dns.TypeDNSKEY, 1232))
	v := &validator{keys: make(map[uint16]*dns.DNSKEY), now: time.Now()}
	var set []dns.RR
	var sep *dns.DNSKEY
	for _, rr := range r.Answer {
		if k, ok := rr.(*dns.DNSKEY); ok {
			set = append(set, k)
			if ds := k.ToDS(anchor.DigestType); ds != nil && strings.EqualFold(ds.Digest, anchor.Digest) && k.KeyTag() == anchor.KeyTag {
				sep = k
			}
		}
	}
	if sep == nil {
		t.Fatalf("no DNSKEY matches the DS %v: %v", anchor, r.Answer)
	}
	if err := v.verifyRRset(set, r.Answer, map[uint16]*dns.DNSKEY{sep.KeyTag(): sep}); err != nil {
		t.Fatalf("DNSKEY RRset: %v", err)
	}
	for _, rr := range set {
		k := rr.(*dns.DNSKEY)
		v.keys[k.KeyTag()] = k
	}
	return v
}

// verifyRRset checks that an RRSIG in section, by one of keys, covers
// rrset and is valid now.
func (v *validator) verifyRRset(rrset, section []dns.RR, keys map[uint16]*dns.DNSKEY) error {
	h := rrset[0].Header()
	var errs []string
	for _, rr := range section {
		sig, ok := rr.(*dns.RRSIG)
		if !ok || sig.TypeCovered != h.Rrtype || !strings.EqualFold(sig.Hdr.Name, h.Name) {
			continue
		}
		k := keys[sig.KeyTag]
		if k == nil {
			errs = append(errs, fmt.Sprintf("key %d unknown", sig.KeyTag))
			continue
		}
		if err := sig.Verify(k, rrset); err != nil {
			errs = append(errs, fmt.Sprintf("key %d: %v", sig.KeyTag, err))
			continue
		}
		if !sig.ValidityPeriod(v.now) {
			errs = append(errs, fmt.Sprintf("key %d: outside %d..%d", sig.KeyTag, sig.Inception, sig.Expiration))
			continue
		}
		return nil
	}
	return fmt.Errorf("%s %s: no valid RRSIG (%s)", h.Name, dns.TypeToString[h.Rrtype], strings.Join(errs, "; "))
}

// verify checks every RRset of section but NS in a referral.
func (v *validator) verify(section []dns.RR, referral bool) error {
	for _, set := range rrsets(section) {
		if t := set[0].Header().Rrtype; t == dns.TypeRRSIG || referral && t == dns.TypeNS {
			continue
		}
		if err := v.verifyRRset(set, section, v.keys); err != nil {
			return err
		}
	}
	return nil
}

// rrsets groups a section's records by owner and type, in order.
func rrsets(section []dns.RR) [][]dns.RR {
	var out [][]dns.RR
	for _, rr := range section {
		h := rr.Header()
		i := slices.IndexFunc(out, func(s []dns.RR) bool {
			return s[0].Header().Rrtype == h.Rrtype && strings.EqualFold(s[0].Header().Name, h.Name)
		})
		if i < 0 {
			out = append(out, []dns.RR{rr})
		} else {
			out[i] = append(out[i], rr)
		}
	}
	return out
}

// doQuery is query with the DO bit.
func doQuery(name string, qtype uint16, size uint16) *dns.Msg {
	m := query(name, qtype, "", size)
	m.IsEdns0().SetDo()
	return m
}

// denial returns the NSEC of a reply's authority section, or nil.
func denial(r *dns.Msg) *dns.NSEC {
	for _, rr := range r.Ns {
		if n, ok := rr.(*dns.NSEC); ok {
			return n
		}
	}
	return nil
}

// TestDNSSEC validates signed answers over UDP and TCP, with a KSK and
// a ZSK (ECDSA P-256) and with a CSK (Ed25519): positive geo answers with
// ECS, static records and CNAMEs, NODATA and NXDOMAIN in compact denial
// (RFC 9824), the DNSKEY RRset, a referral's proof of no DS, and answers
// without DO left unsigned (RFC 3225 §3).
func TestDNSSEC(t *testing.T) {
	for _, setup := range []struct {
		name string
		alg  uint8
		seps []bool
	}{
		{"KSK and ZSK, ECDSA P-256", dns.ECDSAP256SHA256, []bool{true, false}},
		{"CSK, Ed25519", dns.ED25519, []bool{true}},
	} {
		t.Run(setup.name, func(t *testing.T) {
			keys := zoneKeys(t, t.TempDir(), setup.alg, setup.seps...)
			ts := startServer(t, signedConfig(t, keys))
			v := newValidator(t, ts, keys[0].DS())
			testSignedAnswers(t, ts, v)
		})
	}
}

func testSignedAnswers(t *testing.T, ts *testServer, v *validator) {
	tests := []struct {
		name     string
		q        *dns.Msg
		rcode    int
		answer   []uint16 // the types of the answer's RRsets, RRSIGs aside
		types    []uint16 // the NSEC's types; nil for no NSEC
		nsecAt   string
		referral bool
		check    func(t *testing.T, r *dns.Msg)
	}{
		{name: "RFC 4035 §3.1.1: a geo answer is signed; the ECS scope stays", q: func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "203.0.113.0/24", 1232)
			m.IsEdns0().SetDo()
			return m
		}(), answer: []uint16{dns.TypeA}, check: func(t *testing.T, r *dns.Msg) {
			if answerAddr(&dns.Msg{Answer: r.Answer[:1]}) != "127.0.0.13" {
				t.Errorf("answer %v", r.Answer)
			}
			if e := replyECS(r); e == nil || e.SourceScope != 24 {
				t.Errorf("ECS %v", e)
			}
			if r.AuthenticatedData {
				t.Error("AD set by an authoritative server (RFC 4035 §3.2.3)")
			}
		}},
		{name: "RFC 4035 §3.1.1: another PoP's answer is signed too", q: func() *dns.Msg {
			m := query("demo.cdn.example.", dns.TypeA, "198.51.100.0/24", 1232)
			m.IsEdns0().SetDo()
			return m
		}(), answer: []uint16{dns.TypeA}},
		{name: "RFC 4035 §3.1.1: a static TXT", q: doQuery("cdn.example.", dns.TypeTXT, 1232), answer: []uint16{dns.TypeTXT}},
		{name: "RFC 4035 §3.1.1: a CNAME and the geo answer it leads to", q: doQuery("WWW.cdn.example.", dns.TypeA, 1232), answer: []uint16{dns.TypeCNAME, dns.TypeA}},
		{name: "RFC 4035 §3.1.1: the DNSKEY RRset", q: doQuery("cdn.example.", dns.TypeDNSKEY, 1232), answer: []uint16{dns.TypeDNSKEY}},
		{name: "RFC 9824 §3.2: NODATA: the NSEC at the name lists its types, not MX", q: doQuery("demo.cdn.example.", dns.TypeMX, 1232),
			types: []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeRRSIG, dns.TypeNSEC}, nsecAt: "demo.cdn.example."},
		{name: "RFC 9824 §3.2: NODATA at an empty non-terminal", q: doQuery("eu.cdn.example.", dns.TypeA, 1232),
			types: []uint16{dns.TypeRRSIG, dns.TypeNSEC}, nsecAt: "eu.cdn.example."},
		{name: "RFC 9824 §3.1: NXDOMAIN becomes NOERROR with an NSEC of NXNAME", q: doQuery("nope.cdn.example.", dns.TypeA, 1232),
			types: []uint16{dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNXNAME}, nsecAt: "nope.cdn.example."},
		{name: "RFC 4035 §3.1.4: a referral proves there is no DS; its NS is unsigned", q: doQuery("host.sub.cdn.example.", dns.TypeA, 1232),
			types: []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}, nsecAt: "sub.cdn.example.", referral: true},
		{name: "RFC 4035 §3.1.4.1: DS at the delegation: authoritative NODATA", q: doQuery("sub.cdn.example.", dns.TypeDS, 1232),
			types: []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}, nsecAt: "sub.cdn.example."},
		{name: "RFC 3225 §3: without DO, no DNSSEC records and NXDOMAIN stays", q: query("nope.cdn.example.", dns.TypeA, "", 1232), rcode: dns.RcodeNameError,
			check: func(t *testing.T, r *dns.Msg) {
				for _, rr := range append(r.Answer, r.Ns...) {
					if rr.Header().Rrtype == dns.TypeRRSIG || rr.Header().Rrtype == dns.TypeNSEC {
						t.Errorf("%v without DO", rr)
					}
				}
			}},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ts.exchange(t, proto, tt.q)
				if r.Rcode != tt.rcode || r.Truncated {
					t.Fatalf("rcode %s TC %v, want %s", dns.RcodeToString[r.Rcode], r.Truncated, dns.RcodeToString[tt.rcode])
				}
				if tt.q.IsEdns0().Do() {
					if err := v.verify(r.Answer, false); err != nil {
						t.Errorf("answer: %v", err)
					}
					if err := v.verify(r.Ns, tt.referral); err != nil {
						t.Errorf("authority: %v", err)
					}
					if !r.IsEdns0().Do() {
						t.Error("DO not set in the reply (RFC 3225 §3)")
					}
				}
				var got []uint16
				for _, set := range rrsets(r.Answer) {
					if tp := set[0].Header().Rrtype; tp != dns.TypeRRSIG {
						got = append(got, tp)
					}
				}
				if !slices.Equal(got, tt.answer) {
					t.Errorf("answer types %v, want %v", got, tt.answer)
				}
				n := denial(r)
				switch {
				case tt.types == nil && n != nil:
					t.Errorf("NSEC %v, want none", n)
				case tt.types != nil && n == nil:
					t.Errorf("no NSEC in %v", r.Ns)
				case n != nil:
					if !strings.EqualFold(n.Hdr.Name, tt.nsecAt) || !strings.EqualFold(n.NextDomain, `\000.`+tt.nsecAt) || !slices.Equal(n.TypeBitMap, tt.types) {
						t.Errorf("NSEC %v, want %s → \\000.%s with %v", n, tt.nsecAt, tt.nsecAt, tt.types)
					}
				}
				if tt.check != nil {
					tt.check(t, r)
				}
			})
		}
	}
}

// TestDNSSECTruncation checks that a signed answer too large for the
// client's UDP buffer is truncated with TC, and comes whole over TCP
// (RFC 4035 §3.1.1: the RRSIGs are part of the answer).
func TestDNSSECTruncation(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ECDSAP256SHA256, true, false)
	ts := startServer(t, signedConfig(t, keys))
	v := newValidator(t, ts, keys[0].DS())
	small := func(m *dns.Msg) *dns.Msg {
		m.IsEdns0().SetUDPSize(512)
		return m
	}
	if r := ts.exchange(t, "udp", small(query("big.cdn.example.", dns.TypeTXT, "", 512))); r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("unsigned over UDP 512: TC %v, answer %d records", r.Truncated, len(r.Answer))
	}
	if r := ts.exchange(t, "udp", small(doQuery("big.cdn.example.", dns.TypeTXT, 512))); !r.Truncated {
		t.Fatalf("signed over UDP 512: no TC (%d records)", len(r.Answer))
	}
	r := ts.exchange(t, "tcp", small(doQuery("big.cdn.example.", dns.TypeTXT, 512)))
	if r.Truncated || len(r.Answer) != 2 {
		t.Fatalf("over TCP: TC %v, %d records", r.Truncated, len(r.Answer))
	}
	if err := v.verify(r.Answer, false); err != nil {
		t.Error(err)
	}
}

// TestDNSSECRollover runs the two rollovers of docs/dnssec.md with
// reloads, validating at each step as resolvers would: those that
// fetched the DNSKEY RRset before a step, and those that fetch it after.
//
// ZSK (pre-publish, RFC 6781 §4.1.1.1): the new ZSK is published, then
// signs while the old one stays published, then the old one goes.
// KSK (double signature, RFC 6781 §4.1.2): the new KSK is added and signs
// the DNSKEY RRset beside the old; the parent's DS changes; the old KSK
// goes.
func TestDNSSECRollover(t *testing.T) {
	dir := t.TempDir()
	keys := zoneKeys(t, dir, dns.ECDSAP256SHA256, true, false, false, true)
	ksk1, zsk1, zsk2, ksk2 := keys[0], keys[1], keys[2], keys[3]
	ts := startServer(t, signedConfig(t, []*dnssec.Key{ksk1, zsk1}))
	signedBy := func(t *testing.T, r *dns.Msg) []uint16 {
		var tags []uint16
		for _, rr := range r.Answer {
			if sig, ok := rr.(*dns.RRSIG); ok {
				tags = append(tags, sig.KeyTag)
			}
		}
		return tags
	}
	geo := func(t *testing.T) *dns.Msg {
		return ts.exchange(t, "udp", doQuery("demo.cdn.example.", dns.TypeA, 1232))
	}
	reload := func(t *testing.T, cfg *config.Config) {
		if err := ts.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	var before *validator
	steps := []struct {
		name    string
		cfg     *config.Config
		signer  uint16 // the key that signs geo answers
		dnskeys int
		anchor  *dns.DS // the parent's DS
	}{
		{"start: KSK1 and ZSK1", nil, zsk1.DNSKEY.KeyTag(), 2, ksk1.DS()},
		{"RFC 6781 §4.1.1.1: ZSK2 pre-published: ZSK1 still signs", signedConfig(t, []*dnssec.Key{ksk1, zsk1, zsk2}, zsk2), zsk1.DNSKEY.KeyTag(), 3, ksk1.DS()},
		{"RFC 6781 §4.1.1.1: ZSK2 signs, ZSK1 stays published", signedConfig(t, []*dnssec.Key{ksk1, zsk1, zsk2}, zsk1), zsk2.DNSKEY.KeyTag(), 3, ksk1.DS()},
		{"RFC 6781 §4.1.1.1: ZSK1 removed", signedConfig(t, []*dnssec.Key{ksk1, zsk2}), zsk2.DNSKEY.KeyTag(), 2, ksk1.DS()},
		{"RFC 6781 §4.1.2: KSK2 added: both KSKs sign the DNSKEY RRset (old DS)", signedConfig(t, []*dnssec.Key{ksk1, ksk2, zsk2}), zsk2.DNSKEY.KeyTag(), 3, ksk1.DS()},
		{"RFC 6781 §4.1.2: the parent has the new DS: still both", nil, zsk2.DNSKEY.KeyTag(), 3, ksk2.DS()},
		{"RFC 6781 §4.1.2: KSK1 removed", signedConfig(t, []*dnssec.Key{ksk2, zsk2}), zsk2.DNSKEY.KeyTag(), 2, ksk2.DS()},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.cfg != nil {
				reload(t, st.cfg)
			}
			r := geo(t)
			if got := signedBy(t, r); !slices.Equal(got, []uint16{st.signer}) {
				t.Errorf("geo answer signed by %v, want %d", got, st.signer)
			}
			after := newValidator(t, ts, st.anchor)
			if len(after.keys) != st.dnskeys {
				t.Errorf("DNSKEY RRset of %d keys, want %d", len(after.keys), st.dnskeys)
			}
			if err := after.verify(r.Answer, false); err != nil {
				t.Errorf("a resolver fetching the keys now: %v", err)
			}
			if before != nil {
				if err := before.verify(r.Answer, false); err != nil {
					t.Errorf("a resolver that cached the keys of the step before: %v", err)
				}
			}
			before = after
		})
	}
}

// TestDNSSECDelv validates answers with BIND's delv, anchored on the
// zone's KSK, where delv is installed (Debian: bind9-dnsutils, which
// dnsutils pulls in).
func TestDNSSECDelv(t *testing.T) {
	delv, err := exec.LookPath("delv")
	if err != nil {
		t.Skip("delv not installed (apt-get install bind9-dnsutils): validating with miekg/dns only")
	}
	dir := t.TempDir()
	keys := zoneKeys(t, dir, dns.ECDSAP256SHA256, true, false)
	ts := startServer(t, signedConfig(t, keys))
	k := keys[0].DNSKEY
	anchors := filepath.Join(dir, "anchors.conf")
	os.WriteFile(anchors, []byte(fmt.Sprintf("trust-anchors {\n  cdn.example. static-key %d %d %d \"%s\";\n};\n", k.Flags, k.Protocol, k.Algorithm, k.PublicKey)), 0o644)
	host, port, _ := strings.Cut(ts.tcp, ":")
	tests := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"RFC 4035 §5: a geo answer validates", []string{"demo.cdn.example", "A"}, []string{"; fully validated", "127.0.0.11"}},
		{"RFC 4035 §5: a CNAME into a geo answer validates", []string{"www.cdn.example", "A"}, []string{"; fully validated", "CNAME", "127.0.0.11"}},
		{"RFC 4035 §5: a static TXT validates", []string{"cdn.example", "TXT"}, []string{"; fully validated", "v=spf1 -all"}},
		{"RFC 9824: NODATA validates", []string{"demo.cdn.example", "MX"}, []string{"; negative response, fully validated"}},
		{"RFC 9824: a name that does not exist validates (compact denial)", []string{"nope.cdn.example", "A"}, []string{"; negative response, fully validated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"@" + host, "-p", port, "-a", anchors, "+root=cdn.example", "+tcp"}, tt.args...)
			out, err := exec.Command(delv, args...).CombinedOutput()
			for _, w := range tt.wants {
				if !strings.Contains(string(out), w) {
					t.Errorf("delv %s: %v, want %q in:\n%s", strings.Join(args, " "), err, w, out)
				}
			}
		})
	}
}

// TestDNSSECMetrics checks that a second identical answer is served
// from the signature cache, as /metrics shows.
func TestDNSSECMetrics(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ED25519, true)
	ts := startServer(t, signedConfig(t, keys))
	for range 3 {
		ts.exchange(t, "udp", doQuery("cdn.example.", dns.TypeTXT, 1232))
	}
	resp, err := http.Get(ts.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`outpost_dns_dnssec_rrsets_total{result="signed"} 1`, `outpost_dns_dnssec_rrsets_total{result="cached"} 2`, "outpost_dns_dnssec_cache_entries 1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestDNSSECDanglingCNAME checks a CNAME to a name of the zone that does
// not exist: NXDOMAIN without DO (RFC 6604 §2: the code is the last
// name's), and with DO the CNAME signed and the NSEC at the target, not
// at the name asked, which exists (RFC 9824 §3.1).
func TestDNSSECDanglingCNAME(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ED25519, true)
	cfg := signedConfig(t, keys)
	cfg.DNS.Records = append(cfg.DNS.Records, config.Record{Name: "dangling.cdn.example", Type: "CNAME", TTL: time.Hour, Target: "gone.cdn.example"})
	ts := startServer(t, cfg)
	v := newValidator(t, ts, keys[0].DS())
	if r := ts.exchange(t, "udp", query("dangling.cdn.example.", dns.TypeA, "", 1232)); r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Errorf("without DO: %s %v, want NXDOMAIN with the CNAME", dns.RcodeToString[r.Rcode], r.Answer)
	}
	r := ts.exchange(t, "udp", doQuery("dangling.cdn.example.", dns.TypeA, 1232))
	n := denial(r)
	if r.Rcode != dns.RcodeSuccess || n == nil || !strings.EqualFold(n.Hdr.Name, "gone.cdn.example.") || !slices.Contains(n.TypeBitMap, dns.TypeNXNAME) {
		t.Fatalf("with DO: %s, NSEC %v, want NOERROR and an NXNAME NSEC at gone.cdn.example.", dns.RcodeToString[r.Rcode], n)
	}
	if err := v.verify(r.Answer, false); err != nil {
		t.Error(err)
	}
	if err := v.verify(r.Ns, false); err != nil {
		t.Error(err)
	}
}

// TestNSECLongName checks compact denial at a name too long for the
// \000 label (RFC 9824 §3 leaves the successor to the signer): the NSEC
// then runs to the name with its first label's last octet incremented,
// and still validates.
func TestNSECLongName(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ED25519, true)
	ts := startServer(t, signedConfig(t, keys))
	v := newValidator(t, ts, keys[0].DS())
	l := strings.Repeat("a", 63)
	name := l + "." + l + "." + l + "." + strings.Repeat("b", 47) + "y.cdn.example." // 254 octets on the wire
	r := ts.exchange(t, "tcp", doQuery(name, dns.TypeA, 1232))
	n := denial(r)
	if r.Rcode != dns.RcodeSuccess || n == nil {
		t.Fatalf("rcode %s, NSEC %v", dns.RcodeToString[r.Rcode], n)
	}
	if want := l[:62] + "b." + name[64:]; !strings.EqualFold(n.NextDomain, want) {
		t.Errorf("next %s, want %s", n.NextDomain, want)
	}
	if err := v.verify(r.Ns, false); err != nil {
		t.Error(err)
	}
	if got := successor(`a\255.cdn.example.`); got != `a\255.cdn.example.` {
		t.Errorf("successor of a label ending in 255: %s", got)
	}
	if got := successor(`ab.cdn.example.`); got != `ac.cdn.example.` {
		t.Errorf("successor %s", got)
	}
	if got := successor(`a-.cdn.example.`); got != `a\046.cdn.example.` {
		t.Errorf("successor %s, want the escaped dot", got)
	}
}

// TestDNSSECACME checks that a challenge record put through the ACME
// endpoint is signed like any answer, and that its name's NSEC lists
// TXT once it is there (RFC 9824 §3.2).
func TestDNSSECACME(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ECDSAP256SHA256, true, false)
	ts := startServer(t, signedConfig(t, keys))
	v := newValidator(t, ts, keys[0].DS())
	const name = "_acme-challenge.www.cdn.example."
	if r := ts.exchange(t, "udp", doQuery(name, dns.TypeTXT, 1232)); denial(r) == nil || slices.Contains(denial(r).TypeBitMap, dns.TypeTXT) {
		t.Fatalf("before: %v", r)
	}
	if status, body := acmeCall(t, ts, "present", "Bearer 0123456789abcdef0123456789abcdef", ACMERequest{name, "token-value"}); status != http.StatusOK {
		t.Fatalf("present: %d %s", status, body)
	}
	r := ts.exchange(t, "udp", doQuery(name, dns.TypeTXT, 1232))
	if len(r.Answer) != 2 {
		t.Fatalf("answer %v, want the TXT and its RRSIG", r.Answer)
	}
	if err := v.verify(r.Answer, false); err != nil {
		t.Error(err)
	}
	r = ts.exchange(t, "udp", doQuery(name, dns.TypeA, 1232))
	if n := denial(r); n == nil || !slices.Contains(n.TypeBitMap, dns.TypeTXT) {
		t.Errorf("NODATA NSEC %v, want TXT in its types", n)
	}
	if err := v.verify(r.Ns, false); err != nil {
		t.Error(err)
	}
}

// TestDNSSECSignedDelegation checks a delegation to a signed child (a DS
// in dns.records): a DO referral carries the DS RRset, signed, in place
// of the NSEC that proves there is none (RFC 4035 §3.1.4), and a DS query
// at the delegation gets it, authoritative and signed (§3.1.4.1).
func TestDNSSECSignedDelegation(t *testing.T) {
	keys := zoneKeys(t, t.TempDir(), dns.ECDSAP256SHA256, true, false)
	child, err := dnssec.Generate("sub.cdn.example", dns.ED25519, true)
	if err != nil {
		t.Fatal(err)
	}
	ds := child.DS()
	cfg := signedConfig(t, keys)
	cfg.DNS.Records = append(cfg.DNS.Records, config.Record{Name: "sub.cdn.example", Type: "DS", TTL: time.Hour,
		KeyTag: ds.KeyTag, Algorithm: ds.Algorithm, DigestType: ds.DigestType, Text: ds.Digest})
	ts := startServer(t, cfg)
	v := newValidator(t, ts, keys[0].DS())

	r := ts.exchange(t, "udp", doQuery("host.sub.cdn.example.", dns.TypeA, 1232))
	var types []uint16
	for _, rr := range r.Ns {
		types = append(types, rr.Header().Rrtype)
	}
	if r.Authoritative || !slices.Contains(types, dns.TypeDS) || slices.Contains(types, dns.TypeNSEC) {
		t.Fatalf("referral: AA %v, authority %v, want NS, DS and its RRSIG, no NSEC", r.Authoritative, r.Ns)
	}
	if err := v.verify(r.Ns, true); err != nil {
		t.Error(err)
	}
	if r := ts.exchange(t, "udp", query("host.sub.cdn.example.", dns.TypeA, "", 1232)); len(r.Ns) != 2 {
		t.Errorf("referral without DO: %v, want the NS RRset alone (RFC 4035 §3.1.4)", r.Ns)
	}
	r = ts.exchange(t, "udp", doQuery("sub.cdn.example.", dns.TypeDS, 1232))
	if !r.Authoritative || len(r.Answer) != 2 || r.Answer[0].(*dns.DS).Digest != ds.Digest {
		t.Fatalf("DS query: AA %v, answer %v", r.Authoritative, r.Answer)
	}
	if err := v.verify(r.Answer, false); err != nil {
		t.Error(err)
	}
}
