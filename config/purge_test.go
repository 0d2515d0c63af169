package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secret is the token the rows below keep out of the file, in a token file
// or the environment; no error or printed Config may show it.
const secret = "k3pt-0ut-of-the-file"

// TestPurgeToken checks where the purge token comes from: purge.token,
// purge.token_file (relative to the CDN file, whitespace trimmed) or
// $OUTPOST_PURGE_TOKEN, which overrides both.
func TestPurgeToken(t *testing.T) {
	tests := []struct {
		name  string
		purge string            // the purge section, from line 5; "" for none
		files map[string]string // written beside the CDN file
		env   string            // $OUTPOST_PURGE_TOKEN
		want  Purge             // TokenFile relative to the directory
		err   string            // a substring of the error, "" for none
	}{
		{name: "no purge section: purging off", want: Purge{}},
		{name: "token in the file", purge: "purge: {token: s3cr3t}\n", want: Purge{Token: "s3cr3t"}},
		{name: "token_file relative to the file, newline trimmed", purge: "purge: {token_file: purge-token}\n",
			files: map[string]string{"purge-token": secret + "\n"}, want: Purge{Token: secret, TokenFile: "purge-token"}},
		{name: "token_file with surrounding whitespace", purge: "purge: {token_file: secrets/purge}\n",
			files: map[string]string{"secrets/purge": "  " + secret + " \r\n\n"}, want: Purge{Token: secret, TokenFile: "secrets/purge"}},
		{name: "token_file missing", purge: "purge: {token_file: purge-token}\n",
			err: `cdn.yaml:5: purge.token_file: cannot read the token file: open `},
		{name: "token_file empty", purge: "purge: {token_file: purge-token}\n", files: map[string]string{"purge-token": "\n"},
			err: `cdn.yaml:5: purge.token_file: ` + "%DIR%" + `/purge-token is empty (want one token, e.g. from ` + "`openssl rand -hex 32`)"},
		{name: "token_file of two lines", purge: "purge: {token_file: purge-token}\n", files: map[string]string{"purge-token": secret + "\n" + secret + "\n"},
			err: `cdn.yaml:5: purge.token_file: %DIR%/purge-token: token must be printable ASCII without spaces`},
		{name: "token_file too large", purge: "purge: {token_file: purge-token}\n", files: map[string]string{"purge-token": strings.Repeat(secret, 1000)},
			err: `cdn.yaml:5: purge.token_file: %DIR%/purge-token is larger than 4KiB; a token file holds one token`},
		{name: "token and token_file both given", purge: "purge:\n  token: s3cr3t\n  token_file: purge-token\n",
			files: map[string]string{"purge-token": secret + "\n"},
			err:   `cdn.yaml:7: purge.token_file: token (line 6) and token_file both give the token; keep one`},
		{name: "environment overrides token", purge: "purge: {token: s3cr3t}\n", env: secret,
			want: Purge{Token: secret, FromEnv: true}},
		{name: "environment overrides token_file, which is still read", purge: "purge: {token_file: purge-token}\n",
			files: map[string]string{"purge-token": "from-the-file\n"}, env: secret,
			want: Purge{Token: secret, TokenFile: "purge-token", FromEnv: true}},
		{name: "environment does not excuse a missing token_file", purge: "purge: {token_file: purge-token}\n", env: secret,
			err: `cdn.yaml:5: purge.token_file: cannot read the token file`},
		{name: "environment without a purge section turns purging on", env: secret,
			want: Purge{Token: secret, FromEnv: true}},
		{name: "blank environment is unset", purge: "purge: {token: s3cr3t}\n", env: "  ",
			want: Purge{Token: "s3cr3t"}},
		{name: "environment with a space", env: "two words",
			err: `cdn.yaml: $OUTPOST_PURGE_TOKEN: token must be printable ASCII without spaces`},
	}
	const head = "services:\n  - {name: demo, hostnames: [demo.example], origin: {servers: [{url: \"http://o\"}]}}\n" +
		"pops:\n  - {name: prg, location: {lat: 1, lon: 2}, listen: \":8081\", admin: \":9081\"}\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(TokenEnv, tt.env)
			dir := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "cdn.yaml")
			if err := os.WriteFile(path, []byte(head+tt.purge), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if tt.err != "" {
				want := strings.ReplaceAll(tt.err, "%DIR%", dir)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("Load: %v\nwant an error containing %q", err, want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := tt.want
			if want.TokenFile != "" {
				want.TokenFile = filepath.Join(dir, want.TokenFile)
			}
			if c.Purge != want {
				g := c.Purge
				t.Errorf("Purge = {%q %q %v}, want {%q %q %v}", g.Token, g.TokenFile, g.FromEnv, want.Token, want.TokenFile, want.FromEnv)
			}
		})
	}
}

// TestVersionLeavesOutTokenOutsideFile checks that Version hashes the file
// only: a token in a token file or the environment changes nothing in it.
func TestVersionLeavesOutTokenOutsideFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cdn.yaml")
	in := minimal + "purge: {token_file: purge-token}\n"
	if err := os.WriteFile(path, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	var versions []string
	for _, tok := range []struct{ file, env string }{{"one", ""}, {"two", ""}, {"two", "three"}} {
		t.Setenv(TokenEnv, tok.env)
		if err := os.WriteFile(filepath.Join(dir, "purge-token"), []byte(tok.file+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, c.Version)
	}
	for _, v := range versions {
		if v != version(in) {
			t.Errorf("versions %v, want each %s (the file's hash)", versions, version(in))
		}
	}
}

// TestPurgeHidesToken checks that printing a Config, with fmt or slog,
// never shows the token.
func TestPurgeHidesToken(t *testing.T) {
	t.Setenv(TokenEnv, secret)
	c, err := Parse("t.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "purge", c.Purge, "cfg", c)
	for _, out := range []string{fmt.Sprintf("%v", *c), fmt.Sprintf("%+v", *c), fmt.Sprintf("%#v", *c), fmt.Sprint(c.Purge), logged.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("the token shows in %q", out)
		}
	}
	if got := c.Purge.String(); got != "purge{token from $OUTPOST_PURGE_TOKEN}" {
		t.Errorf("String() = %q", got)
	}
}

// TestCheckPurgeToken checks the refusal of placeholder tokens and its
// message: the file, where the token came from, and the way out.
func TestCheckPurgeToken(t *testing.T) {
	tests := []struct {
		name  string
		purge Purge
		want  []string // substrings of the error; nil for none
	}{
		{"no token", Purge{}, nil},
		{"a real token", Purge{Token: "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}, nil},
		{"a token that merely contains the placeholder", Purge{Token: "change-me-9f8e7d6c5b4a"}, nil},
		{"the example's placeholder", Purge{Token: "change-me"}, []string{
			`config: cdn.yaml: purge token "change-me" (purge.token) is a placeholder`,
			"openssl rand -hex 32", "purge.token_file", "$OUTPOST_PURGE_TOKEN", "leave purge out",
		}},
		{"another spelling", Purge{Token: "CHANGE_ME"}, []string{`purge token "CHANGE_ME" (purge.token)`}},
		{"changeme", Purge{Token: "changeme"}, []string{`purge token "changeme"`}},
		{"replace-me", Purge{Token: "replace-me"}, []string{`purge token "replace-me"`}},
		{"from a token file", Purge{Token: "change-me", TokenFile: "/run/secrets/purge"}, []string{
			`(purge.token_file, read from /run/secrets/purge)`,
		}},
		{"from the environment", Purge{Token: "change-me", TokenFile: "/run/secrets/purge", FromEnv: true}, []string{
			`($OUTPOST_PURGE_TOKEN)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Config{Path: "cdn.yaml", Purge: tt.purge}
			err := c.CheckPurgeToken()
			if tt.want == nil {
				if err != nil {
					t.Errorf("CheckPurgeToken: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPlaceholderToken) {
				t.Fatalf("CheckPurgeToken = %v, want ErrPlaceholderToken", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
