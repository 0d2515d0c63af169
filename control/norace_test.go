//go:build !race

package control_test

// raceSlack multiplies the bounds of latency promises under the race
// detector (see race_test.go).
const raceSlack = 1
