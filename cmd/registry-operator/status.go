package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/registry-operator/registry-operator/internal/status"
)

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fs, _ := flags("status", stderr)
	addr := fs.String("addr", "127.0.0.1:9090", "the --listen address of a running operator")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after this long")
	if fs.Parse(args) != nil {
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	st, err := status.Fetch(ctx, *addr)
	if err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	if err := status.Render(stdout, st); err != nil {
		fmt.Fprintln(stderr, "status:", err)
		return 1
	}
	if !st.InSync {
		return 1
	}
	return 0
}
