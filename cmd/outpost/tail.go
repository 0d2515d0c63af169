package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/purge"
)

const tailHelp = `
FILTER is the PoP's tail filter (see docs/operating.md), as one argument or
several: FIELD OP VALUE comparisons, side by side or with "and", "or", "not".
OP is = != ~ !~ (RE2) or, for numbers, < <= > >=. The fields are those of a
JSON access-log line: client, method, host, path, proto, status, bytes,
cache_status, request_id, user_agent, referer, origin_ms, ttfb_ms, total_ms.
  outpost tail --config cdn.yaml --pop prg status '>=' 500
  outpost tail --config cdn.yaml 'cache_status ~ fwd=miss and total_ms > 100'
The stream ends with Ctrl-C, after -n lines, or when the PoP stops. It needs
the purge token (--token, $OUTPOST_PURGE_TOKEN, or the file's).
`

func runTail(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tail", "--config FILE [--pop NAME] [--format json|combined] [-n N] [FILTER...]", stdout, stderr)
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(fs.Output(), tailHelp)
	}
	configPath := fs.String("config", "", "the CDN's YAML file (required): the PoP's admin address and the token")
	popName := fs.String("pop", "", "the PoP to follow (may be omitted when the file has one)")
	format := fs.String("format", "json", "json (every field) or combined (NCSA, as nginx writes)")
	lines := fs.Int("n", 0, "end after this many lines (0: until Ctrl-C)")
	token := fs.String("token", "", "bearer token (default: $OUTPOST_PURGE_TOKEN, else the file's purge.token_file or purge.token)")
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if err := requireFlags(fs, stderr, "config"); err != nil {
		return err
	}
	if *lines < 0 {
		return fmt.Errorf("-n %d: want a number of lines, or 0 for no end", *lines)
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	pc, err := cfg.POP(*popName)
	if err != nil {
		return err
	}
	if *token == "" {
		*token = cfg.Purge.Token
	}
	if *token == "" {
		return errors.New("no token: the tail needs the purge token (purge section, --token or $" + config.TokenEnv + ")")
	}
	q := url.Values{"format": {*format}}
	if f := strings.Join(fs.Args(), " "); f != "" {
		q.Set("q", f)
	}
	if *lines > 0 {
		q.Set("n", strconv.Itoa(*lines))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	u := purge.AdminURL(pc) + "/tail?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("pop %s: %w", pc.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("pop %s: %s: %s", pc.Name, resp.Status, strings.TrimSpace(string(msg)))
	}
	fmt.Fprintf(stderr, "outpost tail: following pop %s (%s); Ctrl-C stops\n", pc.Name, purge.AdminURL(pc))
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if _, err := fmt.Fprintln(stdout, sc.Text()); err != nil {
			return nil // stdout closed: | head
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("pop %s: %w", pc.Name, err)
	}
	return nil
}
