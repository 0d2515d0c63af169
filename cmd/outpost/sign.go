package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"time"

	"github.com/outpost-cdn/outpost/config"
	"github.com/outpost-cdn/outpost/pop"
)

// runSign prints a signed URL for a service that requires them
// (signed_urls): signed with the service's first key, the one its PoPs
// take first.
func runSign(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("sign", "--config FILE [--ttl 1h | --expires TIME] [--ip PREFIX] URL", stdout, stderr)
	configPath := flags.String("config", "", "the CDN's YAML file (required): the service whose hostname is the URL's signs it")
	ttl := flags.Duration("ttl", time.Hour, "how long the URL stays valid")
	expires := flags.String("expires", "", "when the URL stops being valid, RFC 3339 (2027-01-31T00:00:00Z); overrides --ttl")
	ip := flags.String("ip", "", "bind the URL to clients in this address prefix (203.0.113.0/24) or address")
	if err := parseFlags(flags, args, stdout); err != nil {
		return err
	}
	if err := requireFlags(flags, stderr, "config"); err != nil {
		return err
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return errUsage
	}
	raw := flags.Arg(0)
	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	svc, ok := cfg.ServiceByHost(u.Hostname())
	if !ok {
		return fmt.Errorf("no service of %s serves %q", *configPath, u.Hostname())
	}
	if !svc.SignedURLs.Enabled() {
		return fmt.Errorf("service %s does not require signed URLs (it has no signed_urls section)", svc.Name)
	}
	until := time.Now().Add(*ttl)
	if *expires != "" {
		if until, err = time.Parse(time.RFC3339, *expires); err != nil {
			return fmt.Errorf("--expires: %w", err)
		}
	} else if *ttl <= 0 {
		return errors.New("--ttl must be positive")
	}
	var prefix netip.Prefix
	if *ip != "" {
		if prefix, err = netip.ParsePrefix(*ip); err != nil {
			a, aerr := netip.ParseAddr(*ip)
			if aerr != nil {
				return fmt.Errorf("--ip: %w", err)
			}
			prefix = netip.PrefixFrom(a, a.BitLen())
		}
	}
	signed, err := pop.SignURL(raw, svc.SignedURLs.Keys[0], until, prefix)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, signed)
	return nil
}
