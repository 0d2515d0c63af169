package fill

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestWorkers checks that a worker waiting for work takes the next
// function, and exits after Idle; in a synctest bubble, so "waiting" is
// known (synctest.Wait) and Idle passes on the bubble's clock.
func TestWorkers(t *testing.T) {
	tests := []struct {
		name        string
		idleMax     int
		calls       int // one after another, each once the last one's worker waits
		wantStarted uint64
		wantReused  uint64
	}{
		{name: "one worker runs every call in turn", idleMax: 4, calls: 5, wantStarted: 1, wantReused: 4},
		{name: "a bound of one still keeps one waiting", idleMax: 1, calls: 3, wantStarted: 1, wantReused: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &Workers{IdleMax: tt.idleMax, Idle: time.Second}
				for range tt.calls {
					done := make(chan struct{})
					w.Go(func() { close(done) })
					<-done
					synctest.Wait() // the worker waits for work again
				}
				if got := w.Started(); got != tt.wantStarted {
					t.Errorf("Started = %d, want %d", got, tt.wantStarted)
				}
				if got := w.Reused(); got != tt.wantReused {
					t.Errorf("Reused = %d, want %d", got, tt.wantReused)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if got := w.Live(); got != 0 {
					t.Errorf("Live = %d after Idle, want 0", got)
				}
			})
		})
	}
}

// TestWorkersBounds checks that no more than IdleMax workers wait: of five
// busy at once, three exit when they finish and two wait, until Idle.
func TestWorkersBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &Workers{IdleMax: 2, Idle: time.Second}
		const n = 5
		var release sync.WaitGroup
		release.Add(1)
		for range n {
			w.Go(release.Wait)
		}
		synctest.Wait()
		if got := w.Started(); got != n {
			t.Fatalf("Started = %d with %d busy at once, want %d", got, n, n)
		}
		release.Done()
		synctest.Wait()
		if got := w.Live(); got != 2 {
			t.Errorf("Live = %d once all finished, want IdleMax 2", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := w.Live(); got != 0 {
			t.Errorf("Live = %d after Idle, want 0", got)
		}
	})
}
