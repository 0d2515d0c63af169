package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelp checks that every command's -h and --help print usage to
// stdout and exit 0, and that bad invocations exit non-zero.
func TestHelp(t *testing.T) {
	for _, c := range commands() {
		for _, flag := range []string{"-h", "--help"} {
			t.Run(c.name+flag, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				if code := run([]string{c.name, flag}, &stdout, &stderr); code != 0 {
					t.Fatalf("exit %d, stderr %q", code, stderr.String())
				}
				if !strings.Contains(stdout.String(), "Usage") && !strings.Contains(stdout.String(), "outpost") {
					t.Errorf("no usage on stdout: %q", stdout.String())
				}
			})
		}
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no command", nil, 2},
		{"unknown command", []string{"frobnicate"}, 2},
		{"top-level help", []string{"--help"}, 0},
		{"help for a command", []string{"help", "pop"}, 0},
		{"help for an unknown command", []string{"help", "nope"}, 2},
		{"pop without --config", []string{"pop"}, 2},
		{"pop with a bad flag", []string{"pop", "--nope"}, 2},
		{"pop with a missing file", []string{"pop", "--config", "/nonexistent/outpost.yaml", "--check"}, 1},
		{"pop --check on the example", []string{"pop", "--config", "../../deploy/examples/single-pop.yaml", "--check"}, 0},
		{"version", []string{"version"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.want {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.want, stderr.String())
			}
		})
	}
}

// runOutpost runs the command line args, checks its exit code, and checks
// that stdout and stderr contain wantOut and wantStderr ("" for anything).
// It returns stdout for checks of its own.
func runOutpost(t *testing.T, args []string, wantCode int, wantOut, wantStderr string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != wantCode {
		t.Errorf("exit %d, want %d (stderr %q)", code, wantCode, stderr.String())
	}
	if !strings.Contains(stdout.String(), wantOut) {
		t.Errorf("stdout %q lacks %q", stdout.String(), wantOut)
	}
	if !strings.Contains(stderr.String(), wantStderr) {
		t.Errorf("stderr %q lacks %q", stderr.String(), wantStderr)
	}
	return stdout.String()
}
