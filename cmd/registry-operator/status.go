package main

import (
	"fmt"
	"io"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "status: not available in this build")
	return 1
}
