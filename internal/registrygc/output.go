package registrygc

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Report is what garbage-collect printed.
type Report struct {
	// Marked is how many blobs a manifest still references.
	Marked int
	// EligibleBlobs and EligibleManifests are what nothing references
	// (manifests only with --delete-untagged).
	EligibleBlobs     int
	EligibleManifests int
	// DeletedBlobs counts the blobs removed (0 in a dry run).
	DeletedBlobs int
	// Eligible lists the eligible blob digests.
	Eligible []string
}

// The lines garbage-collect prints (distribution's registry/storage
// garbagecollect.go, on stdout) and logs (the vacuum, on stderr).
const (
	summaryFormat = "%d blobs marked, %d blobs and %d manifests eligible for deletion"
	eligibleBlob  = "blob eligible for deletion: "
	deletingBlob  = "Deleting blob: "
)

// Parse reads garbage-collect's combined output. A run that did not reach
// its summary line (it failed while marking) is an error: nothing can be
// said about what it removed.
func Parse(out []byte) (Report, error) {
	var r Report
	summary := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, eligibleBlob):
			r.Eligible = append(r.Eligible, strings.TrimPrefix(line, eligibleBlob))
		case strings.Contains(line, deletingBlob):
			r.DeletedBlobs++
		case strings.Contains(line, "eligible for deletion") && strings.Contains(line, "blobs marked"):
			if _, err := fmt.Sscanf(line, summaryFormat, &r.Marked, &r.EligibleBlobs, &r.EligibleManifests); err != nil {
				return Report{}, fmt.Errorf("garbage-collect summary %q: %w", line, err)
			}
			summary = true
		}
	}
	if err := sc.Err(); err != nil {
		return Report{}, fmt.Errorf("read garbage-collect output: %w", err)
	}
	if !summary {
		return Report{}, fmt.Errorf("garbage-collect printed no summary (%q): it did not finish marking", lastLine(out))
	}
	if len(r.Eligible) != r.EligibleBlobs {
		return Report{}, fmt.Errorf("garbage-collect summary counts %d eligible blobs but lists %d", r.EligibleBlobs, len(r.Eligible))
	}
	return r, nil
}

func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}
