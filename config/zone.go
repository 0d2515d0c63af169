package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// This file is the zone's static records (dns.records) and the ACME
// endpoint's settings (dns.acme): what an operator puts in the zone beside
// the geo answers. The checks that need the zone, the services and the
// name servers run in zoneRefs, from dnsRefs.

// Limits of dns.records and dns.acme.
const (
	maxRecords           = 10000
	maxTXTLen            = 4000 // a TXT value: 16 strings of 255 octets, less overhead
	defaultACMEMax       = 20
	maxACMERecords       = 1000
	defaultACMETTL       = time.Minute
	maxACMETTL           = time.Hour
	defaultACMEValueSize = 512
	maxACMEValueSize     = maxTXTLen
)

// RecordTypes are the types dns.records accepts, in the order the
// messages list them.
var RecordTypes = []string{"A", "AAAA", "CNAME", "MX", "TXT", "CAA", "NS", "DS"}

// Record is one static record of the zone (dns.records): served as
// given beside the geo answers, and reloaded with the file.
type Record struct {
	// Name is the owner, lowercased and fully qualified without the
	// trailing dot; in the file it is relative to the zone ("www"), "@"
	// for the apex, or absolute when it ends with the zone or a dot.
	Name string
	// Type is one of RecordTypes.
	Type string
	// TTL is in whole seconds, 0s..24h; default dns.soa.ttl (1h). The
	// records of one name and type share one TTL (RFC 2181 §5.2).
	TTL time.Duration
	// Value is the record's data as given.
	Value string

	// Addr is an A or AAAA record's address.
	Addr netip.Addr
	// Target is a CNAME's, NS's or MX's name, lowercased and fully
	// qualified without the trailing dot; relative names in the file are
	// relative to the zone, as owners are.
	Target string
	// Preference is an MX record's.
	Preference uint16
	// Text is a TXT record's text (served as strings of at most 255
	// octets) or a CAA record's value.
	Text string
	// Flag and Tag are a CAA record's (RFC 8659 §4.1).
	Flag uint8
	Tag  string
	// KeyTag, Algorithm and DigestType are a DS record's (RFC 4034 §5.1),
	// whose digest, in upper-case hex, is in Text. A DS belongs at a
	// delegation: it makes the delegated zone a signed one.
	KeyTag     uint16
	Algorithm  uint8
	DigestType uint8

	line, index int // where it was given, for zoneRefs' messages
}

// ACMEEnv is the environment variable that, when set and not empty, gives
// the token of the DNS server's ACME endpoint (see ACME), overriding the
// file's dns.acme.token and dns.acme.token_file.
const ACMEEnv = "OUTPOST_DNS_ACME_TOKEN"

// ACME configures the DNS server's admin endpoint for ACME DNS-01
// challenges (POST /acme/present and /acme/cleanup): an ACME client puts
// and removes TXT records at _acme-challenge names of the zone with a
// bearer token. The token comes, as the purge token does, from
// $OUTPOST_DNS_ACME_TOKEN when set, else dns.acme.token_file, else
// dns.acme.token; with none the endpoint is off. String hides the token.
type ACME struct {
	// Token is the bearer token; "" means the endpoint is off.
	Token string
	// TokenFile is where the token was read from, absolute; "" when
	// inline or from the environment.
	TokenFile string
	// FromEnv reports whether Token came from $OUTPOST_DNS_ACME_TOKEN.
	FromEnv bool
	// MaxRecords bounds the challenge records held at once, 1..1000;
	// default 20.
	MaxRecords int
	// TTL is the TTL of challenge records, whole seconds, 1s..1h; default
	// 1m.
	TTL time.Duration
	// MaxValueSize bounds one challenge value in bytes, 1..4000; default
	// 512 (an ACME value is 43).
	MaxValueSize int
}

// Enabled reports whether the ACME endpoint is on.
func (a ACME) Enabled() bool { return a.Token != "" }

// String describes a without its token.
func (a ACME) String() string {
	switch {
	case a.Token == "":
		return "acme{off}"
	case a.FromEnv:
		return "acme{token from $" + ACMEEnv + "}"
	case a.TokenFile != "":
		return "acme{token from " + a.TokenFile + "}"
	}
	return "acme{token from the file}"
}

// GoString is String, so that %#v hides the token too.
func (a ACME) GoString() string { return a.String() }

// records decodes dns.records; zoneRefs finishes them once the zone is
// known.
func (d *decoder) records(n *yaml.Node, path string) []Record {
	items, ok := d.list(n, path)
	if !ok {
		return nil
	}
	if len(items) > maxRecords {
		d.errorf(n, path, "%d records is more than %d", len(items), maxRecords)
		return nil
	}
	var out []Record
	for i, item := range items {
		p := index(path, i)
		r := Record{line: item.Line, index: i}
		var ttlGiven bool
		ok := d.fields(item, p, []field{
			required("name", d.setString(&r.Name)),
			required("type", func(n *yaml.Node, path string) {
				s, ok := d.str(n, path)
				if !ok {
					return
				}
				t := strings.ToUpper(s)
				if !slices.Contains(RecordTypes, t) {
					d.errorf(n, path, "record type %q is not supported (want one of %s)", s, strings.Join(RecordTypes, ", "))
					return
				}
				r.Type = t
			}),
			required("value", d.setString(&r.Value)),
			optional("ttl", func(n *yaml.Node, path string) {
				ttlGiven = true
				d.setSeconds(&r.TTL, 0, maxDNSTTL)(n, path)
			}),
		})
		if !ok || r.Name == "" || r.Type == "" {
			continue
		}
		if !ttlGiven {
			r.TTL = -1 // dns.soa.ttl, in zoneRefs
		}
		out = append(out, r)
	}
	return out
}

// acme decodes dns.acme into a, which holds the defaults.
func (d *decoder) acme(n *yaml.Node, path string, a *ACME) {
	var t secretToken
	d.fields(n, path, append(d.tokenFields(&t),
		optional("max_records", d.setInt(&a.MaxRecords, 1, maxACMERecords)),
		optional("ttl", d.setSeconds(&a.TTL, time.Second, maxACMETTL)),
		optional("max_value_size", d.setInt(&a.MaxValueSize, 1, maxACMEValueSize)),
	))
	d.tokenTwice(&t, path)
	a.Token, a.TokenFile = t.token, t.file
	if IsPlaceholderToken(a.Token) {
		d.errorf(n, path, "the ACME token is a placeholder from the examples: anyone could put TXT records in the zone with it. Make a secret with `openssl rand -hex 32`")
		a.Token = ""
	}
}

// acmeEnv applies $OUTPOST_DNS_ACME_TOKEN, when set and not empty.
func (d *decoder) acmeEnv(a *ACME) {
	t := strings.TrimSpace(os.Getenv(ACMEEnv))
	if t == "" {
		return
	}
	if err := checkToken(t); err != nil {
		d.wrapf(nil, "$"+ACMEEnv, err, "%v", err)
		return
	}
	a.Token, a.TokenFile, a.FromEnv = t, "", true
}

// zoneRefs resolves the records' names against the zone, parses their
// values, applies the default TTL and checks the zone as a whole: names
// inside it, one CNAME alone at a name (RFC 1034 §3.6.2), nothing under
// a delegation but its glue, no clash with the geo answers of service
// hostnames or the name servers' addresses, one TTL per RRset (RFC 2181
// §5.2), no record twice.
func (d *decoder) zoneRefs(c *Config, at *yaml.Node) {
	dc := &c.DNS
	paths := func(r *Record) string { return index("dns.records", r.index) }
	node := func(r *Record) *yaml.Node { return &yaml.Node{Line: r.line, Column: 5} }
	var ok []Record
	for _, r := range dc.Records {
		name, err := recordName(r.Name, c.Zone)
		if err != nil {
			d.wrapf(node(&r), paths(&r)+".name", err, "%v", err)
			continue
		}
		r.Name = name
		if r.TTL < 0 {
			r.TTL = dc.SOA.TTL
		}
		if err := r.parseValue(c.Zone); err != nil {
			d.wrapf(node(&r), paths(&r)+".value", err, "%s record %q: %v", r.Type, r.Value, err)
			continue
		}
		ok = append(ok, r)
	}
	dc.Records = ok
	if len(ok) == 0 {
		return
	}

	type key struct{ name, typ string }
	first := make(map[key]*Record)
	data := make(map[string]*Record)
	types := make(map[string][]string) // name → types
	var delegations []string
	for i := range ok {
		r := &ok[i]
		k := key{r.Name, r.Type}
		dk := fmt.Sprintf("%s %s %s %q %d %d %s", r.Name, r.Type, r.Addr, r.Target, r.Preference, r.Flag, r.Tag) + "\x00" + r.Text
		if f := data[dk]; f != nil {
			d.errorf(node(r), paths(r), "%s %s %q is listed twice (first at line %d)", r.Name, r.Type, r.Value, f.line)
			continue
		}
		data[dk] = r
		if f := first[k]; f != nil {
			switch {
			case r.Type == "CNAME":
				d.errorf(node(r), paths(r), "%s has a second CNAME (first at line %d); a name has at most one", r.Name, f.line)
			case f.TTL != r.TTL:
				d.errorf(node(r), paths(r)+".ttl", "%s %s: TTL %s differs from %s at line %d; the records of one name and type share one TTL (RFC 2181 §5.2)",
					r.Name, r.Type, formatDuration(r.TTL), formatDuration(f.TTL), f.line)
			}
			continue
		}
		first[k] = r
		types[r.Name] = append(types[r.Name], r.Type)
		if r.Type == "NS" && r.Name != c.Zone {
			delegations = append(delegations, r.Name)
		}
	}
	isService := func(name string) bool { _, ok := c.ServiceByHost(name); return ok }
	isNSName := func(name string) bool {
		return slices.ContainsFunc(dc.NS, func(ns NameServer) bool { return ns.Name == name && inZone(name, c.Zone) })
	}
	reported := make(map[key]bool)
	for i := range ok {
		r := &ok[i]
		k := key{r.Name, r.Type}
		if reported[k] || first[k] != r {
			continue
		}
		reported[k] = true
		switch {
		case r.Type == "CNAME" && r.Name == c.Zone:
			d.errorf(node(r), paths(r), "a CNAME at the zone's apex %s is not allowed: the apex has its SOA and NS records (RFC 1034 §3.6.2)", r.Name)
		case r.Type == "CNAME" && len(types[r.Name]) > 1:
			d.errorf(node(r), paths(r), "%s has a CNAME and other records (%s); a CNAME stands alone (RFC 1034 §3.6.2)", r.Name, strings.Join(slices.DeleteFunc(slices.Clone(types[r.Name]), func(t string) bool { return t == "CNAME" }), ", "))
		case r.Type == "CNAME" && (isService(r.Name) || isNSName(r.Name)):
			d.errorf(node(r), paths(r), "%s is a service hostname or a name server of dns.ns, which has its own addresses: it cannot be a CNAME", r.Name)
		case (r.Type == "A" || r.Type == "AAAA") && isService(r.Name):
			d.errorf(node(r), paths(r), "%s is a service hostname: the DNS server answers its %s records with the nearest PoP; remove this record or the hostname", r.Name, r.Type)
		case (r.Type == "A" || r.Type == "AAAA") && isNSName(r.Name):
			d.errorf(node(r), paths(r), "%s is a name server of dns.ns: give its addresses there (dns.ns[].addresses)", r.Name)
		case r.Type == "NS" && r.Name == c.Zone:
			d.errorf(node(r), paths(r), "NS records at the apex are dns.ns; records of type NS here delegate names below the apex")
		case r.Type == "NS" && slices.ContainsFunc(types[r.Name], func(t string) bool { return t != "NS" && t != "DS" && t != "A" && t != "AAAA" }):
			d.errorf(node(r), paths(r), "%s is delegated (NS) and has other records; below a delegation only its name servers' addresses (glue) belong", r.Name)
		case r.Type == "DS" && (r.Name == c.Zone || !slices.Contains(types[r.Name], "NS")):
			d.errorf(node(r), paths(r), "a DS record belongs at a delegation (a name with NS records below the apex), and %s is none; the zone's own DS is its parent's (outpost dnssec ds)", r.Name)
		}
		// Under a delegation: only glue.
		for _, del := range delegations {
			if r.Name == del || !strings.HasSuffix(r.Name, "."+del) {
				continue
			}
			if r.Type != "A" && r.Type != "AAAA" {
				d.errorf(node(r), paths(r), "%s is below the delegation of %s: it belongs in that zone, not in this one (only glue addresses may be here)", r.Name, del)
			}
		}
	}
	for _, del := range delegations {
		for _, s := range c.Services {
			for _, h := range s.Hostnames {
				if h == del || strings.HasSuffix(h, "."+del) {
					d.errorf(at, "dns.records", "service hostname %s is at or below the delegation of %s to other name servers; the geo answers would never be asked for", h, del)
				}
			}
		}
		for _, ns := range dc.NS {
			if ns.Name == del || strings.HasSuffix(ns.Name, "."+del) {
				d.errorf(at, "dns.records", "name server %s of dns.ns is at or below the delegation of %s", ns.Name, del)
			}
		}
	}
}

// recordName resolves a record's owner or target name against the zone:
// "@" is the apex, a name ending in a dot or in the zone is absolute,
// anything else is relative to the zone. The result must be in the zone
// when inZone is true.
func recordName(s, zone string) (string, error) {
	n, err := resolveName(s, zone)
	if err != nil {
		return "", err
	}
	if !inZone(n, zone) {
		return "", fmt.Errorf("name %q is outside zone %q", s, zone)
	}
	return n, nil
}

// resolveName is recordName without the zone check.
func resolveName(s, zone string) (string, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	switch {
	case name == "@":
		return zone, nil
	case strings.HasSuffix(name, "."):
		name = strings.TrimSuffix(name, ".")
	case name == zone || strings.HasSuffix(name, "."+zone):
	default:
		name += "." + zone
	}
	if err := checkRecordName(name); err != nil {
		return "", fmt.Errorf("name %q: %w", s, err)
	}
	return name, nil
}

// checkRecordName checks a lowercased name without the trailing dot as
// records may have it: host name syntax, with '_' allowed at the start of
// a label (_acme-challenge, _dmarc, selector._domainkey).
func checkRecordName(name string) error {
	if name == "" || len(name) > 253 {
		return errors.New("empty, or longer than 253 characters")
	}
	for l := range strings.SplitSeq(name, ".") {
		if l == "" || len(l) > 63 {
			return errors.New("empty label, or a label longer than 63 characters")
		}
		for i, c := range l {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			case c == '*':
				return errors.New("wildcards are not supported")
			case c >= utf8.RuneSelf:
				return fmt.Errorf("invalid character %q (write internationalized names in their xn-- form)", c)
			default:
				return fmt.Errorf("invalid character %q at %d (want letters, digits, '-', '_' and '.')", c, i)
			}
		}
	}
	return nil
}

// parseValue parses r.Value by r.Type.
func (r *Record) parseValue(zone string) error {
	v := strings.TrimSpace(r.Value)
	switch r.Type {
	case "A", "AAAA":
		a, err := parseAnswerAddr(v)
		switch {
		case err != nil:
			return err
		case r.Type == "A" && !a.Is4():
			return errors.New("not an IPv4 address (an AAAA record holds IPv6)")
		case r.Type == "AAAA" && !a.Is6():
			return errors.New("not an IPv6 address (an A record holds IPv4)")
		}
		r.Addr = a
	case "CNAME", "NS":
		t, err := resolveName(v, zone)
		if err != nil {
			return err
		}
		r.Target = t
	case "MX":
		pref, host, ok := strings.Cut(v, " ")
		p, err := strconv.ParseUint(pref, 10, 16)
		if !ok || err != nil {
			return errors.New(`want "PREFERENCE HOST", e.g. "10 mx.example.net."`)
		}
		t, err := resolveName(strings.TrimSpace(host), zone)
		if err != nil {
			return err
		}
		r.Preference, r.Target = uint16(p), t
	case "TXT":
		if len(r.Value) > maxTXTLen {
			return fmt.Errorf("%d bytes is more than %d", len(r.Value), maxTXTLen)
		}
		r.Text = r.Value // as given: spaces count
	case "CAA":
		return r.parseCAA(v)
	case "DS":
		return r.parseDS(v)
	}
	return nil
}

// parseDS parses `KEYTAG ALGORITHM DIGESTTYPE DIGEST` (RFC 4034 §5.3),
// as `outpost dnssec ds` and other signers print it.
func (r *Record) parseDS(v string) error {
	f := strings.Fields(v)
	if len(f) < 4 {
		return errors.New(`want "KEYTAG ALGORITHM DIGESTTYPE DIGEST", e.g. "12345 13 2 49FD46E6…"`)
	}
	tag, err1 := strconv.ParseUint(f[0], 10, 16)
	alg, err2 := strconv.ParseUint(f[1], 10, 8)
	dt, err3 := strconv.ParseUint(f[2], 10, 8)
	if err1 != nil || err2 != nil || err3 != nil {
		return errors.New("key tag (0..65535), algorithm and digest type (0..255) must be numbers")
	}
	digest := strings.ToUpper(strings.Join(f[3:], ""))
	if len(digest)%2 != 0 || strings.Trim(digest, "0123456789ABCDEF") != "" {
		return fmt.Errorf("digest %q is not hexadecimal", digest)
	}
	want := map[uint64]int{1: 40, 2: 64, 4: 96}[dt]
	if want != 0 && len(digest) != want {
		return fmt.Errorf("a digest of type %d has %d hex digits, not %d", dt, want, len(digest))
	}
	r.KeyTag, r.Algorithm, r.DigestType, r.Text = uint16(tag), uint8(alg), uint8(dt), digest
	return nil
}

// parseCAA parses `FLAG TAG VALUE` (RFC 8659 §4.1), the value optionally
// in double quotes.
func (r *Record) parseCAA(v string) error {
	f := strings.SplitN(v, " ", 3)
	if len(f) != 3 {
		return errors.New(`want "FLAG TAG VALUE", e.g. '0 issue "letsencrypt.org"'`)
	}
	flag, err := strconv.ParseUint(f[0], 10, 8)
	if err != nil {
		return fmt.Errorf("flag %q is not a number 0..255", f[0])
	}
	tag := f[1]
	if tag == "" || len(tag) > 15 || strings.Trim(strings.ToLower(tag), "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return fmt.Errorf("tag %q is not 1..15 letters and digits (issue, issuewild, iodef)", tag)
	}
	val := strings.TrimSpace(f[2])
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = val[1 : len(val)-1]
	}
	r.Flag, r.Tag, r.Text = uint8(flag), strings.ToLower(tag), val
	return nil
}

// Limits of dns.dnssec.
const (
	defaultSigValidity = 7 * 24 * time.Hour
	minSigValidity     = time.Hour
	maxSigValidity     = 90 * 24 * time.Hour
	defaultSigCache    = 100_000
	maxSigCache        = 10_000_000
	maxDNSSECKeys      = 8
)

// DNSSEC configures online signing of the zone (dns.dnssec); off without
// keys. The key files are made by `outpost dnssec keygen` and read by the
// DNS server, not by Parse.
type DNSSEC struct {
	// Keys are the zone's keys, in order.
	Keys []DNSSECKey
	// SignatureValidity is how long each signature is valid, 1h..90d
	// (2160h); default 168h (7 days).
	SignatureValidity time.Duration
	// CacheSize bounds the RRsets whose signatures are cached,
	// 1..10000000; default 100000.
	CacheSize int
}

// DNSSECKey is one key of dns.dnssec.keys.
type DNSSECKey struct {
	// File is the absolute path of the key's .key file (relative to the
	// configuration file in it); its .private file is beside it.
	File string
	// Published reports a key that is in the DNSKEY RRset but signs
	// nothing (state: published): a ZSK before its rollover, a key after
	// it. The default, state: active, signs.
	Published bool
}

// Enabled reports whether the zone is signed.
func (d DNSSEC) Enabled() bool { return len(d.Keys) > 0 }

// dnssec decodes dns.dnssec into s, which holds the defaults.
func (d *decoder) dnssec(n *yaml.Node, path string, s *DNSSEC) {
	d.fields(n, path, []field{
		required("keys", func(n *yaml.Node, path string) {
			items, ok := d.list(n, path)
			if !ok {
				return
			}
			if len(items) == 0 || len(items) > maxDNSSECKeys {
				d.errorf(n, path, "want 1..%d keys (leave dnssec out for an unsigned zone)", maxDNSSECKeys)
				return
			}
			for i, item := range items {
				p := index(path, i)
				var k DNSSECKey
				if r := d.node(item, p); r != nil && r.Kind == yaml.MappingNode {
					d.fields(r, p, []field{
						required("file", d.setPath(&k.File, "file", "")),
						optional("state", func(n *yaml.Node, path string) {
							v, ok := d.str(n, path)
							switch {
							case !ok:
							case v == "active":
							case v == "published":
								k.Published = true
							default:
								d.errorf(n, path, "state %q: want active (signs) or published (in the DNSKEY RRset only)", v)
							}
						}),
					})
				} else {
					d.setPath(&k.File, "a key file", "")(item, p)
				}
				if k.File == "" {
					continue
				}
				k.File = strings.TrimSuffix(strings.TrimSuffix(k.File, ".key"), ".private") + ".key"
				if slices.ContainsFunc(s.Keys, func(o DNSSECKey) bool { return o.File == k.File }) {
					d.errorf(item, p, "key %s is listed twice", filepath.Base(k.File))
					continue
				}
				s.Keys = append(s.Keys, k)
			}
			if len(s.Keys) > 0 && !slices.ContainsFunc(s.Keys, func(k DNSSECKey) bool { return !k.Published }) {
				d.errorf(n, path, "every key is published only: one at least must be active to sign")
			}
		}),
		optional("signature_validity", func(n *yaml.Node, path string) {
			v, ok := d.duration(n, path)
			switch {
			case !ok:
			case v < minSigValidity || v > maxSigValidity:
				d.errorf(n, path, "%s is out of range (want %s..%s)", formatDuration(v), formatDuration(minSigValidity), formatDuration(maxSigValidity))
			default:
				s.SignatureValidity = v
			}
		}),
		optional("cache_size", d.setInt(&s.CacheSize, 1, maxSigCache)),
	})
}
