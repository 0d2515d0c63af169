package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// TokenEnv is the environment variable that, when set and not empty,
// gives the purge token, overriding the file's purge.token or
// purge.token_file. It serves every role that reads the file, so a
// container or unit can get the token from a secret store while the file
// itself holds none.
const TokenEnv = "OUTPOST_PURGE_TOKEN"

// maxTokenFile bounds a token file: a token is a line, not a document.
const maxTokenFile = 4 << 10

// Purge configures the purge endpoint on each PoP's admin listener.
//
// The token comes from, in order: $OUTPOST_PURGE_TOKEN when it is set and
// not empty; else the file named by purge.token_file; else purge.token.
// With none of them purging is off. Its String and GoString methods hide
// the token, so printing a Config never shows it.
type Purge struct {
	// Token is the bearer token purge requests must carry. "" (no purge
	// section and no $OUTPOST_PURGE_TOKEN) means purge is not configured.
	Token string
	// TokenFile is the file the token was read from (purge.token_file,
	// absolute), or "" when the file gives the token inline or has none.
	// It is kept even when $OUTPOST_PURGE_TOKEN overrides the token.
	TokenFile string
	// FromEnv reports whether Token came from $OUTPOST_PURGE_TOKEN.
	FromEnv bool
}

// String describes p without its token.
func (p Purge) String() string {
	switch {
	case p.Token == "":
		return "purge{off}"
	case p.FromEnv:
		return "purge{token from $" + TokenEnv + "}"
	case p.TokenFile != "":
		return "purge{token from " + p.TokenFile + "}"
	}
	return "purge{token from the file}"
}

// GoString is String, so that %#v hides the token too.
func (p Purge) GoString() string { return p.String() }

// LogValue is String, for slog.
func (p Purge) LogValue() slog.Value { return slog.StringValue(p.String()) }

// placeholderTokens are purge tokens that example files, tutorials and
// older versions of Outpost's own examples carry, compared after
// IsPlaceholderToken's normalization.
var placeholderTokens = []string{"changeme", "replaceme"}

// IsPlaceholderToken reports whether t is a known placeholder purge token,
// such as "change-me": a value that anyone who has read the examples
// knows. Case, '-' and '_' are ignored.
func IsPlaceholderToken(t string) bool {
	norm := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(t))
	for _, p := range placeholderTokens {
		if norm == p {
			return true
		}
	}
	return false
}

// ErrPlaceholderToken is wrapped by the error CheckPurgeToken returns.
var ErrPlaceholderToken = errors.New("config: the purge token is a placeholder")

// CheckPurgeToken returns an error wrapping ErrPlaceholderToken when the
// purge token is a known placeholder (IsPlaceholderToken): a PoP refuses
// to start or reload with one. The message names where the token came
// from and how to make a real one.
func (c *Config) CheckPurgeToken() error {
	if !IsPlaceholderToken(c.Purge.Token) {
		return nil
	}
	from := "purge.token"
	switch {
	case c.Purge.FromEnv:
		from = "$" + TokenEnv
	case c.Purge.TokenFile != "":
		from = "purge.token_file, read from " + c.Purge.TokenFile
	}
	return &placeholderError{fmt.Sprintf("config: %s: purge token %q (%s) is a placeholder from the examples: anyone could purge the cache with it. "+
		"Make a secret with `openssl rand -hex 32` and put it in purge.token, in the file named by purge.token_file, "+
		"or in $%s (which overrides both); or leave purge out to turn purging off",
		c.Path, c.Purge.Token, from, TokenEnv)}
}

// placeholderError is CheckPurgeToken's error.
type placeholderError struct{ msg string }

func (e *placeholderError) Error() string { return e.msg }
func (e *placeholderError) Unwrap() error { return ErrPlaceholderToken }

// purge decodes the purge section: the token in the file (token) or in a
// file it names (token_file), exactly one of them.
func (d *decoder) purge(n *yaml.Node, path string) Purge {
	var t secretToken
	ok := d.fields(n, path, d.tokenFields(&t))
	switch {
	case !ok:
		return Purge{}
	case d.tokenTwice(&t, path):
		return Purge{}
	case t.tokenAt == nil && t.fileAt == nil:
		d.errorf(n, path, "want token or token_file (or leave purge out and set $%s)", TokenEnv)
	}
	return Purge{Token: t.token, TokenFile: t.file}
}

// secretToken is a bearer token given in the file (token) or in a file it
// names (token_file), as the purge section and dns.acme give theirs.
type secretToken struct {
	token, file     string     // the token, and the file it was read from
	tokenAt, fileAt *yaml.Node // the keys, when given
}

// tokenFields returns the decoders of token and token_file into t.
func (d *decoder) tokenFields(t *secretToken) []field {
	return []field{
		optional("token", func(n *yaml.Node, path string) {
			t.tokenAt = n
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			if err := checkToken(s); err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			t.token = s
		}),
		optional("token_file", func(n *yaml.Node, path string) {
			t.fileAt = n
			s, ok := d.str(n, path)
			if !ok {
				return
			}
			file, token, err := d.readTokenFile(s)
			if err != nil {
				d.wrapf(n, path, err, "%v", err)
				return
			}
			t.file, t.token = file, token
		}),
	}
}

// tokenTwice reports, as an error at the section at path, a token given
// both ways, and then forgets it.
func (d *decoder) tokenTwice(t *secretToken, path string) bool {
	if t.tokenAt == nil || t.fileAt == nil {
		return false
	}
	d.errorf(t.fileAt, join(path, "token_file"), "token (line %d) and token_file both give the token; keep one", t.tokenAt.Line)
	t.token, t.file = "", ""
	return true
}

// readTokenFile resolves name (relative to the config file's directory)
// and reads a token from it: its content without surrounding whitespace
// (so a trailing newline is fine). Messages never quote the content.
func (d *decoder) readTokenFile(name string) (file, token string, err error) {
	if name == "" {
		return "", "", errors.New("token_file must not be empty")
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(d.file), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", fmt.Errorf("cannot read the token file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return "", "", fmt.Errorf("cannot read the token file: %w", err)
	} else if !fi.Mode().IsRegular() {
		return "", "", fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	switch {
	case err != nil:
		return "", "", fmt.Errorf("cannot read the token file: %w", err)
	case len(data) > maxTokenFile:
		return "", "", fmt.Errorf("%s is larger than %s; a token file holds one token", path, formatSize(maxTokenFile))
	}
	token = strings.TrimSpace(string(data))
	if token == "" {
		return "", "", fmt.Errorf("%s is empty (want one token, e.g. from `openssl rand -hex 32`)", path)
	}
	if err := checkToken(token); err != nil {
		return "", "", fmt.Errorf("%s: %w", path, err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return path, token, nil
}

// purgeEnv applies $OUTPOST_PURGE_TOKEN, when set and not empty, over the
// token the file gave (or as the token when the file has no purge
// section).
func (d *decoder) purgeEnv(p *Purge) {
	t := strings.TrimSpace(os.Getenv(TokenEnv))
	if t == "" {
		return
	}
	if err := checkToken(t); err != nil {
		d.wrapf(nil, "$"+TokenEnv, err, "%v", err)
		return
	}
	p.Token, p.FromEnv = t, true
}
