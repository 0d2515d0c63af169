package fill

import "sync"

// Group tracks the flights in progress by key, each with the caller's own
// state of type T beside it (what the fetch learnt: a response header, a
// caching decision). The zero Group is ready to use.
type Group[T any] struct {
	mu      sync.Mutex
	flights map[string]member[T]
}

type member[T any] struct {
	f *Flight
	v T
}

// Join returns the state of the flight in progress for key, or starts a
// new flight and makes its state with newState; leader is true for the
// request that started it, which must run the fetch. Every caller counts
// as one request joined (Joined).
func (g *Group[T]) Join(key string, newState func(*Flight) T) (v T, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.flights[key]; ok {
		m.f.joined.Add(1)
		return m.v, false
	}
	if g.flights == nil {
		g.flights = make(map[string]member[T])
	}
	f := newFlight(key)
	f.leave = func() { g.forget(key, f) }
	f.joined.Add(1)
	v = newState(f)
	g.flights[key] = member[T]{f: f, v: v}
	return v, true
}

// forget removes f from the group if it is still the flight for key, so
// that later requests start afresh.
func (g *Group[T]) forget(key string, f *Flight) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.flights[key]; ok && m.f == f {
		delete(g.flights, key)
	}
}

// Joined returns how many requests have joined the flight in progress for
// key, its leader included (0 when there is none).
func (g *Group[T]) Joined(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if m, ok := g.flights[key]; ok {
		return int(m.f.joined.Load())
	}
	return 0
}

// Len returns the number of flights in progress.
func (g *Group[T]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.flights)
}

// Each calls fn for every flight in progress when it is called, outside
// the group's lock.
func (g *Group[T]) Each(fn func(f *Flight, v T)) {
	g.mu.Lock()
	all := make([]member[T], 0, len(g.flights))
	for _, m := range g.flights {
		all = append(all, m)
	}
	g.mu.Unlock()
	for _, m := range all {
		fn(m.f, m.v)
	}
}
