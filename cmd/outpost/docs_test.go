package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// docCommand is one `outpost ...` command line of the manual.
type docCommand struct {
	where string // FILE:LINE
	args  []string
}

// docCommands returns the outpost command lines of the shell blocks of
// README.md and docs/*.md: "go run ./cmd/outpost ARGS" or "outpost ARGS",
// up to a pipe, redirection, "&", ";" or comment.
func docCommands(t *testing.T) []docCommand {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "..", "README.md"))
	start := regexp.MustCompile(`(?:^|[\s(;&|$])(?:go run \./cmd/outpost|outpost)\s+([a-z].*)$`)
	var out []docCommand
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inSh := false
		for i, line := range strings.Split(string(data), "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "```") {
				inSh = !inSh && (trimmed == "```sh" || trimmed == "```bash" || trimmed == "```console")
				continue
			}
			if !inSh || strings.HasPrefix(trimmed, "#") {
				continue
			}
			m := start.FindStringSubmatch(trimmed)
			if m == nil {
				continue
			}
			args := shellWords(m[1])
			if len(args) == 0 {
				continue
			}
			out = append(out, docCommand{where: filepath.Base(f) + ":" + itoa(i+1), args: args})
		}
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }

// shellWords splits s as a shell would, roughly: quotes group words, and
// the words end at |, >, <, &, ; or #.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.IndexByte("|><&;#", c) >= 0:
			if inWord {
				words = append(words, cur.String())
			}
			return words
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestDocumentedCommands: every outpost command the manual shows names a
// command that exists and only flags it has, so the manual cannot drift
// from the binary; the ones that can run in CI (validating the shipped
// files, the version) run, and succeed.
func TestDocumentedCommands(t *testing.T) {
	cmds := docCommands(t)
	if len(cmds) < 20 {
		t.Fatalf("found only %d outpost commands in the manual", len(cmds))
	}
	usage := map[string]string{}
	for _, c := range commands() {
		var stdout, stderr bytes.Buffer
		run([]string{c.name, "-h"}, &stdout, &stderr)
		usage[c.name] = stdout.String()
	}
	flagRE := regexp.MustCompile(`^--?([a-zA-Z][a-zA-Z0-9-]*)(=.*)?$`)
	for _, dc := range cmds {
		name := dc.args[0]
		help, ok := usage[name]
		if !ok {
			t.Errorf("%s: outpost %s: no such command", dc.where, name)
			continue
		}
		flags := dc.args[1:]
		if len(flags) > 0 && regexp.MustCompile(`^[a-z]+$`).MatchString(flags[0]) {
			// A command with subcommands (config push, geodb build, dns explain).
			var stdout, stderr bytes.Buffer
			if code := run([]string{name, flags[0], "-h"}, &stdout, &stderr); code == 0 && stdout.Len() > 0 {
				help = stdout.String()
			}
		}
		for _, a := range flags {
			m := flagRE.FindStringSubmatch(a)
			if m == nil || m[1] == "h" || m[1] == "help" {
				continue
			}
			if !regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(m[1]) + `\b`).MatchString(help) {
				t.Errorf("%s: outpost %s has no flag -%s (outpost %s)", dc.where, name, m[1], strings.Join(dc.args, " "))
			}
		}
	}

	// What runs in CI: the checks of the shipped files, and version.
	for _, dc := range cmds {
		runnable := dc.args[0] == "version" ||
			dc.args[0] == "pop" && slices.Contains(dc.args, "--check") && strings.Contains(strings.Join(dc.args, " "), "deploy/examples/")
		if !runnable {
			continue
		}
		t.Run(dc.where, func(t *testing.T) {
			args := make([]string, len(dc.args))
			for i, a := range dc.args {
				if strings.HasPrefix(a, "deploy/") {
					a = filepath.Join("..", "..", a)
				}
				args[i] = a
			}
			t.Setenv("OUTPOST_PURGE_TOKEN", "a-test-token-that-is-no-placeholder-0123456789")
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 0 {
				t.Errorf("outpost %s: exit %d: %s", strings.Join(dc.args, " "), code, stderr.String())
			}
		})
	}
}
