package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

// startTLSPoP runs a real PoP with a self-signed HTTPS listener (HTTP/1.1
// and HTTP/2), HTTP/3 on the same port and h2c on the plain listener, in
// front of originURL, until the test ends. It returns the plain and the
// HTTPS base URLs.
func startTLSPoP(t *testing.T, originURL string) (plain, secure string) {
	t.Helper()
	text := strings.Replace(fmt.Sprintf(popConfig, originURL), "    drain: 0s\n",
		"    drain: 0s\n    tls: {listen: \"127.0.0.1:0\", self_signed: true, h2c: true}\n", 1)
	cfg, err := config.Parse("bench-tls.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	p, err := pop.New(cfg, "", pop.Options{Logger: testLogger(t), ShutdownGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var ls pop.Listeners
	for range 20 { // a TCP port whose UDP twin is free
		tlsLn := listen(t, "127.0.0.1:0")
		quic, err := net.ListenPacket("udp", tlsLn.Addr().String())
		if err != nil {
			tlsLn.Close()
			continue
		}
		ls.TLS, ls.QUIC = tlsLn, quic
		break
	}
	if ls.TLS == nil {
		t.Fatal("no TCP+UDP port pair free")
	}
	ls.Serve, ls.Admin = listen(t, "127.0.0.1:0"), listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.ServeListeners(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("PoP: %v", err)
		}
		p.Close()
	})
	return "http://" + ls.Serve.Addr().String(), "https://" + ls.TLS.Addr().String()
}

// TestProtocolsAgainstPoP runs bench with every protocol against a real
// PoP in front of the synthetic origin: the bodies verify, the cache
// hits, and every response came on the protocol asked for.
func TestProtocolsAgainstPoP(t *testing.T) {
	origin := startOrigin(t)
	plain, secure := startTLSPoP(t, origin)
	for _, tc := range []struct {
		name, url, proto, want string
	}{
		{"h1", plain, ProtocolHTTP1, protoHTTP1},
		{"h1 over TLS", secure, ProtocolHTTP1, protoHTTP1},
		{"h2", secure, ProtocolHTTP2, protoHTTP2},
		{"h2c", plain, ProtocolHTTP2, protoHTTP2},
		{"h3", secure, ProtocolHTTP3, protoHTTP3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			zipf, err := NewZipf(ZipfOptions{Objects: 50, S: 0.9, Seed: 3, Size: 1500})
			if err != nil {
				t.Fatal(err)
			}
			res := mustRun(t, Config{
				URL: tc.url + "/", Protocol: tc.proto, InsecureTLS: true, Workload: zipf,
				Connections: 4, Requests: 400, Verify: true,
			})
			if res.Errors != 0 || res.Responses != 400 {
				t.Fatalf("%d responses, errors %v", res.Responses, res.ErrorsByKind)
			}
			if res.HitRatio <= 0 || res.Results.Hit == 0 {
				t.Errorf("hit ratio %v, results %+v", res.HitRatio, res.Results)
			}
			if res.Protocols[tc.want] != 400 || len(res.Protocols) != 1 {
				t.Errorf("protocols %v, want 400 on %s", res.Protocols, tc.want)
			}
			if len(res.PerPoP) != 1 || res.PerPoP[0].Name != "outpost/bench" {
				t.Errorf("per PoP %+v", res.PerPoP)
			}
		})
	}
}
