package origin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestHealthURLAndDraining checks the checks of a pool of Outpost PoPs
// (the shield tier): each server probed at its own HealthURL, a 503
// "draining" taking it out at once, other failures after Fall, Rise
// passes bringing it back, and InRotation counting what picks may choose.
func TestHealthURLAndDraining(t *testing.T) {
	var status atomic.Int32
	var body atomic.Value
	status.Store(http.StatusOK)
	body.Store("ok\n")
	var probes atomic.Int64
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		probes.Add(1)
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, body.Load().(string))
	}))
	t.Cleanup(admin.Close)
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	servers := []Server{{URL: mustURL(t, a.URL)}, {URL: mustURL(t, b.URL), HealthURL: mustURL(t, admin.URL+"/healthz")}}
	p, err := NewPool(servers, Options{
		// Fall is high: only the draining answer can take b out quickly.
		Health: &HealthCheck{Path: "/health", Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 3, Fall: 100, Draining: "draining"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	bName := b.Listener.Addr().String()
	waitFor(t, "b probed at its HealthURL", func() bool { return probes.Load() > 0 })
	if p.InRotation() != 2 {
		t.Fatalf("InRotation %d, want 2", p.InRotation())
	}

	t.Run("a 503 that is not draining counts toward fall", func(t *testing.T) {
		body.Store("busy\n")
		status.Store(http.StatusServiceUnavailable)
		n := probes.Load()
		waitFor(t, "three more probes", func() bool { return probes.Load() >= n+3 })
		if st := serverStats(t, p, bName).State; st != StateHealthy {
			t.Errorf("b is %s after a few 503s, want healthy until fall", st)
		}
	})
	t.Run("503 draining takes it out at once", func(t *testing.T) {
		body.Store("draining\n")
		waitFor(t, "b out", func() bool { return serverStats(t, p, bName).State == StateUnhealthy })
		if p.InRotation() != 1 {
			t.Errorf("InRotation %d, want 1", p.InRotation())
		}
	})
	t.Run("rise passes bring it back", func(t *testing.T) {
		body.Store("ok\n")
		status.Store(http.StatusOK)
		waitFor(t, "b back", func() bool { return serverStats(t, p, bName).State == StateHealthy })
		if p.InRotation() != 2 {
			t.Errorf("InRotation %d, want 2", p.InRotation())
		}
	})
}
