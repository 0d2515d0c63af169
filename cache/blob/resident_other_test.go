//go:build !linux

package blob

import (
	"os"
	"testing"
)

func dropPages(*os.File) {}

func noRawSendfile() func() { return func() {} }

func droppableDir(t *testing.T) string { return t.TempDir() }
