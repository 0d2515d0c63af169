//go:build race

package control_test

// raceSlack multiplies the bounds of latency promises under the race
// detector, which makes the agents' code several times slower (CI runs
// -race on a loaded 2-core machine); the promise itself is the unscaled
// bound, which the netlab tests check against real processes.
const raceSlack = 3
