//go:build race

package diskstore

// raceEnabled is true under the race detector, which makes the policy
// replays ten times slower: they replay shorter traces then.
const raceEnabled = true
