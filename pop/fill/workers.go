package fill

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Workers' zero value.
const (
	// DefaultIdleWorkers is how many workers may wait for work at once;
	// one that finishes while that many wait exits.
	DefaultIdleWorkers = 128
	// DefaultWorkerIdle is how long a worker waits for its next function
	// before it exits. Under load a worker is handed the next fetch within
	// microseconds; the wait is kept short so that an idle process (and a
	// test's goroutine-leak check) soon has none left.
	DefaultWorkerIdle = 50 * time.Millisecond
)

// Workers runs fetches on goroutines that outlive one fetch. A goroutine
// starts with a small stack, and a fetch through an HTTP client grows it
// (the stack is copied each time it doubles); a new goroutine per fetch
// paid for that growth on every miss, a few percent of its CPU. A worker
// that finishes a function waits a while for the next one, its stack
// already grown; when none waits, Go starts one. The zero value is ready
// to use, with DefaultIdleWorkers and DefaultWorkerIdle. Workers is safe
// for concurrent use.
type Workers struct {
	// IdleMax bounds the workers waiting for work (0: DefaultIdleWorkers);
	// Idle is how long each waits (0: DefaultWorkerIdle). Set them before
	// the first Go.
	IdleMax int
	Idle    time.Duration

	once  sync.Once
	tasks chan func() // unbuffered: a send succeeds only into a waiting worker

	idle    atomic.Int32
	live    atomic.Int64
	started atomic.Uint64
	reused  atomic.Uint64
}

func (w *Workers) init() {
	w.once.Do(func() {
		w.tasks = make(chan func())
		if w.IdleMax <= 0 {
			w.IdleMax = DefaultIdleWorkers
		}
		if w.Idle <= 0 {
			w.Idle = DefaultWorkerIdle
		}
	})
}

// Go runs fn on a waiting worker, or on a new one if none waits. It never
// blocks.
func (w *Workers) Go(fn func()) {
	w.init()
	select {
	case w.tasks <- fn:
		w.reused.Add(1)
		return
	default:
	}
	w.live.Add(1)
	w.started.Add(1)
	go w.work(fn)
}

// work runs fn, then the functions handed to it, until it has waited
// w.Idle for one or IdleMax others already wait.
func (w *Workers) work(fn func()) {
	defer w.live.Add(-1)
	var timer *time.Timer
	for {
		fn()
		fn = nil // let go of what it holds while waiting
		if int(w.idle.Add(1)) > w.IdleMax {
			w.idle.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(w.Idle)
		} else {
			timer.Reset(w.Idle) // Go 1.23 timers: no stale expiry survives Reset
		}
		select {
		case fn = <-w.tasks:
			w.idle.Add(-1)
		case <-timer.C:
			w.idle.Add(-1)
			return
		}
	}
}

// Live is the number of worker goroutines, running a function or waiting
// for one.
func (w *Workers) Live() int64 { return w.live.Load() }

// Started is the number of worker goroutines started.
func (w *Workers) Started() uint64 { return w.started.Load() }

// Reused is the number of functions a waiting worker took.
func (w *Workers) Reused() uint64 { return w.reused.Load() }
