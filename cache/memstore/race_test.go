//go:build race

package memstore

// raceEnabled is true under the race detector, whose sync.Pool randomly
// drops pooled objects: ristretto's Get-frequency batches then never fill,
// so TinyLFU sees no frequencies and never rejects.
const raceEnabled = true
