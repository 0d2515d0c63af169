package dnssec

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestKeysRoundTrip writes keys of each algorithm and reads them back.
func TestKeysRoundTrip(t *testing.T) {
	for name, alg := range Algorithms {
		t.Run(name, func(t *testing.T) {
			k, err := Generate("CDN.example", alg, true)
			if err != nil {
				t.Fatal(err)
			}
			file, err := k.WriteFiles(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Load(file, false)
			if err != nil {
				t.Fatal(err)
			}
			if got.DNSKEY.PublicKey != k.DNSKEY.PublicKey || got.DNSKEY.KeyTag() != k.DNSKEY.KeyTag() || !got.SEP() || got.Active {
				t.Errorf("read %v, wrote %v", got.DNSKEY, k.DNSKEY)
			}
			if got.DS().Digest != k.DS().Digest || got.DS().DigestType != dns.SHA256 {
				t.Errorf("DS %v, want %v", got.DS(), k.DS())
			}
		})
	}
}

// TestSign checks RFC 4034 §3 signatures as a validator checks them,
// who signs what (RFC 6781 §3.1: the KSK the DNSKEY RRset, the ZSK the
// rest; a CSK both), and the cache: one signing per RRset variant until a
// quarter of the validity has passed, bounded.
func TestSign(t *testing.T) {
	ksk, _ := Generate("cdn.example", dns.ECDSAP256SHA256, true)
	zsk, _ := Generate("cdn.example", dns.ED25519, false)
	next, _ := Generate("cdn.example", dns.ED25519, false)
	next.Active = false
	now := time.Unix(1_800_000_000, 0)
	s, err := NewSigner("cdn.example.", []*Key{ksk, zsk, next}, Options{CacheSize: 2, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a := func(name, ip string) []dns.RR {
		return []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.ParseIP(ip)}}
	}
	verify := func(t *testing.T, rrset, sigs []dns.RR, by *Key) {
		t.Helper()
		if len(sigs) != 1 {
			t.Fatalf("%d signatures, want 1", len(sigs))
		}
		sig := sigs[0].(*dns.RRSIG)
		if sig.KeyTag != by.DNSKEY.KeyTag() {
			t.Fatalf("signed by %d, want %d", sig.KeyTag, by.DNSKEY.KeyTag())
		}
		if err := sig.Verify(by.DNSKEY, rrset); err != nil {
			t.Fatalf("verify: %v", err)
		}
		if !sig.ValidityPeriod(now) || sig.ValidityPeriod(now.Add(8*24*time.Hour)) {
			t.Errorf("validity %d..%d", sig.Inception, sig.Expiration)
		}
	}
	t.Run("RFC 4034 §3: the ZSK signs an A RRset, whatever the owner's case", func(t *testing.T) {
		rr := a("Demo.CDN.example.", "192.0.2.1")
		sigs, err := s.Sign(rr)
		if err != nil {
			t.Fatal(err)
		}
		verify(t, rr, sigs, zsk)
	})
	t.Run("RFC 6781 §3.1: the KSK signs the DNSKEY RRset, which holds the published key too", func(t *testing.T) {
		if len(s.DNSKEYs()) != 3 {
			t.Fatalf("DNSKEY RRset %v", s.DNSKEYs())
		}
		sigs, err := s.Sign(s.DNSKEYs())
		if err != nil {
			t.Fatal(err)
		}
		verify(t, s.DNSKEYs(), sigs, ksk)
	})
	t.Run("the same RRset again: from the cache", func(t *testing.T) {
		before := s.Stats()
		s.Sign(a("demo.cdn.example.", "192.0.2.1"))
		if st := s.Stats(); st.Cached != before.Cached+1 || st.Signed != before.Signed {
			t.Errorf("stats %+v after %+v", st, before)
		}
	})
	t.Run("another answer variant: signed, and the cache holds at most 2", func(t *testing.T) {
		before := s.Stats()
		s.Sign(a("demo.cdn.example.", "192.0.2.2"))
		if st := s.Stats(); st.Signed != before.Signed+1 || st.Entries != 2 || st.Evicted != 1 {
			t.Errorf("stats %+v after %+v", st, before)
		}
	})
	t.Run("after a quarter of the validity: signed again", func(t *testing.T) {
		before := s.Stats()
		now = now.Add(43 * time.Hour)
		rr := a("demo.cdn.example.", "192.0.2.2")
		sigs, _ := s.Sign(rr)
		if st := s.Stats(); st.Signed != before.Signed+1 {
			t.Errorf("stats %+v after %+v", st, before)
		}
		verify(t, rr, sigs, zsk)
	})
	t.Run("RFC 4034 §6.2: owners' case does not matter, data's does", func(t *testing.T) {
		txt := func(owner string, texts ...string) []dns.RR {
			var rrs []dns.RR
			for _, x := range texts {
				rrs = append(rrs, &dns.TXT{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{x}})
			}
			return rrs
		}
		a, _ := cacheKey(txt("X.cdn.example.", "Hello", "World"))
		b, _ := cacheKey(txt("x.CDN.example.", "Hello", "World"))
		c, _ := cacheKey(txt("x.cdn.example.", "Hello", "world"))
		d, _ := cacheKey(txt("x.cdn.example.", "Hello", "WORLD"))
		if a != b || b == c || c == d {
			t.Errorf("keys: a==b %v, b==c %v, c==d %v; want true, false, false", a == b, b == c, c == d)
		}
		rr := txt("x.cdn.example.", "Hello", "WORLD")
		sigs, _ := s.Sign(rr)
		verify(t, rr, sigs, zsk)
	})
	t.Run("a CSK signs everything", func(t *testing.T) {
		csk, _ := NewSigner("cdn.example.", []*Key{ksk}, Options{Now: func() time.Time { return now }})
		rr := a("demo.cdn.example.", "192.0.2.1")
		sigs, _ := csk.Sign(rr)
		verify(t, rr, sigs, ksk)
	})
	t.Run("a key of another zone is refused", func(t *testing.T) {
		other, _ := Generate("example.net", dns.ED25519, true)
		if _, err := NewSigner("cdn.example.", []*Key{other}, Options{}); err == nil {
			t.Error("no error")
		}
	})
}

// BenchmarkSign measures signing an A RRset: "new" signs every time (a
// cache of one entry and a new address each time), "cached" answers from
// the cache, as a repeated answer variant does.
func BenchmarkSign(b *testing.B) {
	for name, alg := range Algorithms {
		k, _ := Generate("cdn.example", alg, true)
		for _, cached := range []bool{false, true} {
			label := name + "/new"
			if cached {
				label = name + "/cached"
			}
			b.Run(label, func(b *testing.B) {
				s, _ := NewSigner("cdn.example.", []*Key{k}, Options{CacheSize: 1})
				rr := &dns.A{Hdr: dns.RR_Header{Name: "demo.cdn.example.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: net.IPv4(192, 0, 2, 1).To4()}
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if !cached {
						i++
						rr.A = net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)).To4()
					}
					if _, err := s.Sign([]dns.RR{rr}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
