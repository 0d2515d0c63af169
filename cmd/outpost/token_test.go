package main

import (
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// TestPopCheckPurgeToken checks that `pop --check` refuses a placeholder
// purge token as the PoP would, so systemd's ExecStartPre and ExecReload
// fail with the reason.
func TestPopCheckPurgeToken(t *testing.T) {
	tests := []struct {
		name       string
		env        string
		wantCode   int
		wantStderr string
	}{
		{"no token: purging off", "", 0, ""},
		{"a real token", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", 0, ""},
		{"the placeholder", "change-me", 1, "openssl rand -hex 32"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.TokenEnv, tt.env)
			runOutpost(t, []string{"pop", "--config", "../../deploy/examples/single-pop.yaml", "--check"}, tt.wantCode, "", tt.wantStderr)
		})
	}
}
