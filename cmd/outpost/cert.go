package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"strings"

	"github.com/outpost-cdn/outpost/localca"
)

func runCert(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("cert", "--hosts NAME,IP,... --out DIR", stdout, stderr)
	hosts := flags.String("hosts", "", "comma-separated host names, wildcards (*.cdn.example) and IP addresses (required)")
	out := flags.String("out", "", "directory for ca.pem, ca-key.pem, cert.pem and key.pem (required); an existing CA there is reused")
	name := flags.String("name", "cert", "base name of the certificate files: NAME.pem and NAME-key.pem (cert.pem and key.pem by default)")
	if err := parseFlags(flags, args, stdout); err != nil {
		return err
	}
	if err := requireFlags(flags, stderr, "hosts", "out"); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		flags.Usage()
		return errUsage
	}
	ca, err := localca.Load(*out)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "using the CA in %s\n", *out)
	case errors.Is(err, fs.ErrNotExist):
		if ca, err = localca.New("Outpost local CA"); err != nil {
			return err
		}
		if err := ca.WriteFiles(*out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "made a CA: %s (trust it in clients; keep %s private)\n",
			filepath.Join(*out, "ca.pem"), filepath.Join(*out, "ca-key.pem"))
	default:
		return err
	}
	list := strings.Split(*hosts, ",")
	leaf, err := ca.Issue(list)
	if err != nil {
		return err
	}
	certName, keyName := *name+".pem", *name+"-key.pem"
	if *name == "cert" {
		keyName = "key.pem"
	}
	if err := leaf.WriteFiles(*out, certName, keyName); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "made %s and %s for %s\n", filepath.Join(*out, certName), filepath.Join(*out, keyName), strings.Join(list, ", "))
	fmt.Fprintf(stdout, "try, with a PoP whose tls.listen is 127.0.0.1:8443 (the lab's are on 127.0.0.11-13:8443):\n  %s\n", curlLine(filepath.Join(*out, "ca.pem"), list, "127.0.0.1:8443"))
	return nil
}

// curlLine is a curl command that reaches a PoP at addr (host:port) for
// the certificate's first host name, trusting only the CA: --resolve
// sends the name to addr, so the name need not be in DNS; a wildcard is
// tried as its "www" name; an IP address is used as it is.
func curlLine(caFile string, hosts []string, addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	name := strings.TrimSpace(hosts[0])
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name = "www." + rest
	}
	if ip := net.ParseIP(name); ip != nil {
		return fmt.Sprintf("curl --cacert %s https://%s/", caFile, net.JoinHostPort(name, port))
	}
	return fmt.Sprintf("curl --cacert %s --resolve %s:%s https://%s/", caFile, net.JoinHostPort(name, port), strings.Split(addr, ":")[0], net.JoinHostPort(name, port))
}
