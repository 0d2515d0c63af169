//go:build !unix

package diskstore

import "os"

// lockDir does nothing where flock(2) is missing.
func lockDir(string) (*os.File, error) { return nil, nil }
