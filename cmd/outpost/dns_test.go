package main

import "testing"

func TestDNSCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantOut    string
		wantStderr string
	}{
		{"without --config", []string{"dns"}, 2, "", "Usage: outpost dns"},
		{"with a bad flag", []string{"dns", "--nope"}, 2, "", "flag provided but not defined"},
		{"--check on the lab", []string{"dns", "--config", "../../deploy/examples/lab.yaml", "--check"}, 0,
			"lab.yaml: ok (version ", ""},
		{"--check on a file without a dns section", []string{"dns", "--config", "../../deploy/examples/single-pop.yaml", "--check"}, 1,
			"", "has no dns section"},
		{"a bad log level", []string{"dns", "--config", "../../deploy/examples/lab.yaml", "--log-level", "loud"}, 1, "", "bad --log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runOutpost(t, tt.args, tt.code, tt.wantOut, tt.wantStderr)
		})
	}
}
