package h1guard

import (
	"io"
	"log"
)

// discardLog keeps the server's expected complaints out of test output.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
