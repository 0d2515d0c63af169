package pop

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

func TestReload(t *testing.T) {
	a := newTestOrigin(t, cacheable("from a"))
	b := newTestOrigin(t, cacheable("from b"))
	tp := startPoP(t, a.URL)
	tp.get(t, "/kept")
	before := tp.Stats()

	// A file that drops this PoP is refused; the old one keeps serving.
	bad, err := config.Parse("bad.yaml", []byte(strings.Replace(fmt.Sprintf(testConfig, b.URL, "0s"), "name: test", "name: other", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Reload(bad); err == nil {
		t.Fatal("Reload accepted a file without this PoP")
	}
	if tp.Stats().ConfigVersion != before.ConfigVersion {
		t.Fatal("a refused reload changed the version")
	}

	next := strings.Replace(fmt.Sprintf(testConfig, b.URL, "0s"), "hostnames: [demo.example, 127.0.0.1]", "hostnames: [demo.example, 127.0.0.1, new.example]", 1)
	cfg, err := config.Parse("next.yaml", []byte(next))
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	tests := []struct {
		name, path, host, wantBody string
		wantHit                    bool
	}{
		{"the cache survives a reload", "/kept", "demo.example", "from a", true},
		{"misses go to the new origin", "/fresh", "demo.example", "from b", false},
		{"a new hostname is served", "/fresh", "new.example", "from b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			waitFor(t, "fills done", func() bool { return tp.fills.inFlight() == 0 })
			resp, body := tp.do(t, http.MethodGet, tt.path, tt.host, nil)
			if string(body) != tt.wantBody || strings.Contains(resp.Header.Get("Cache-Status"), "; hit") != tt.wantHit {
				t.Errorf("got %q (%s), want %q hit=%v", body, resp.Header.Get("Cache-Status"), tt.wantBody, tt.wantHit)
			}
		})
	}
	after := tp.statsAfter(t, 4)
	if after.ConfigVersion == before.ConfigVersion || after.ConfigVersion != cfg.Version {
		t.Errorf("version %q after reload, want %q", after.ConfigVersion, cfg.Version)
	}
	if after.Services["demo"].Requests != 4 {
		t.Errorf("the service's figures restarted: %+v", after.Services["demo"].Figures)
	}
}
