//go:build race

package kubetest

// raceEnabled: this test binary has the race detector, and so does the kir
// it builds.
const raceEnabled = true
