package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
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
	if *hosts == "" || *out == "" || flags.NArg() > 0 {
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
	fmt.Fprintf(stdout, "try: curl --cacert %s https://%s/\n", filepath.Join(*out, "ca.pem"), list[0])
	return nil
}
