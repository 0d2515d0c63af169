package pop

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/outpost-cdn/outpost/config"
)

// tokenConfig is testConfig with the purge section given (purge is "" for
// none).
func tokenConfig(originURL, purge string) string {
	return strings.Replace(fmt.Sprintf(testConfig, originURL, "0s"), "purge:\n  token: s3cret\n", purge, 1)
}

// TestPlaceholderToken checks that New refuses a placeholder purge token,
// from the file or the environment, unless the lab allows it.
func TestPlaceholderToken(t *testing.T) {
	tests := []struct {
		name  string
		purge string // the purge section
		env   string // $OUTPOST_PURGE_TOKEN
		allow bool   // Options.AllowPlaceholderToken
		ok    bool
		warns bool // logs the placeholder warning
	}{
		{name: "a real token starts", purge: "purge: {token: s3cret}\n", ok: true},
		{name: "no token starts (purging off)", ok: true},
		{name: "placeholder in the file is refused", purge: "purge: {token: change-me}\n"},
		{name: "placeholder in another spelling is refused", purge: "purge: {token: CHANGEME}\n"},
		{name: "placeholder in the environment is refused", purge: "purge: {token: s3cret}\n", env: "change-me"},
		{name: "a real token in the environment overrides a placeholder", purge: "purge: {token: change-me}\n", env: "s3cret", ok: true},
		{name: "the lab may run with a placeholder, and warns", purge: "purge: {token: change-me}\n", allow: true, ok: true, warns: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.TokenEnv, tt.env)
			cfg, err := config.Parse("cdn.yaml", []byte(tokenConfig("http://127.0.0.1:1", tt.purge)))
			if err != nil {
				t.Fatal(err)
			}
			var logs logBuffer
			p, err := New(cfg, "", Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), AllowPlaceholderToken: tt.allow})
			if p != nil {
				p.Close()
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
			} else {
				if !errors.Is(err, config.ErrPlaceholderToken) {
					t.Fatalf("New = %v, want an error wrapping config.ErrPlaceholderToken", err)
				}
				for _, want := range []string{"pop test:", "cdn.yaml", "openssl rand -hex 32", "purge.token_file", "$OUTPOST_PURGE_TOKEN"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error lacks %q: %v", want, err)
					}
				}
			}
			if warned := strings.Contains(logs.String(), "purge token is a placeholder"); warned != tt.warns {
				t.Errorf("warned = %v, want %v; logs:\n%s", warned, tt.warns, logs.String())
			}
		})
	}
}

// TestReloadPlaceholderToken checks that a reload to a placeholder token is
// refused, leaving the running token, unless the lab allows it; and that a
// reload that changes the token says so without showing it.
func TestReloadPlaceholderToken(t *testing.T) {
	const purgeBody = `{"url":"http://demo.example/x"}`
	tests := []struct {
		name      string
		allow     bool
		next      string // the purge section reloaded
		ok        bool
		wantToken string // the token the PoP takes after the reload
	}{
		{name: "placeholder refused", next: "purge: {token: change-me}\n", wantToken: "s3cret"},
		{name: "placeholder allowed for the lab", allow: true, next: "purge: {token: change-me}\n", ok: true, wantToken: "change-me"},
		{name: "a new real token taken", next: "purge: {token: n3w-s3cret}\n", ok: true, wantToken: "n3w-s3cret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(config.TokenEnv, "")
			origin := newTestOrigin(t, cacheable("x"))
			var logs logBuffer
			tp := startPoPConfig(t, tokenConfig(origin.URL, "purge: {token: s3cret}\n"), func(o *Options) {
				o.AllowPlaceholderToken = tt.allow
				o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			version := tp.Stats().ConfigVersion
			cfg, err := config.Parse("next.yaml", []byte(tokenConfig(origin.URL, tt.next)))
			if err != nil {
				t.Fatal(err)
			}
			err = tp.Reload(cfg)
			switch {
			case tt.ok && err != nil:
				t.Fatalf("Reload: %v", err)
			case !tt.ok && !errors.Is(err, config.ErrPlaceholderToken):
				t.Fatalf("Reload = %v, want an error wrapping config.ErrPlaceholderToken", err)
			case !tt.ok && tp.Stats().ConfigVersion != version:
				t.Errorf("a refused reload changed the version")
			}
			if code, _, raw := tp.purge(t, tt.wantToken, purgeBody); code != 200 {
				t.Errorf("purge with %q: %d %s, want 200", tt.wantToken, code, raw)
			}
			if tt.ok {
				if !strings.Contains(logs.String(), "purge_token_changed=true") {
					t.Errorf("the reload line does not say the token changed:\n%s", logs.String())
				}
				if strings.Contains(logs.String(), tt.wantToken) && tt.wantToken != "change-me" {
					t.Errorf("the logs show the token:\n%s", logs.String())
				}
			}
		})
	}
}
