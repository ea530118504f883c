package marathon

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ErrAnswerTooLarge is wrapped when Marathon (or whatever answers on its
// address) sends a body larger than maxBody: the operator never buffers an
// unbounded answer.
var ErrAnswerTooLarge = errors.New("answer too large")

// capTransport makes every response body fail once it passes max bytes,
// rather than end quietly: go-marathon reads bodies itself, and a body cut
// short without an error would look like a complete (and wrong) answer.
type capTransport struct {
	base http.RoundTripper
	max  int64
}

func (t *capTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{rc: resp.Body, left: t.max, max: t.max}
	return resp, nil
}

// cappedBody reads at most max bytes and then fails if more follow.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
	max  int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrAnswerTooLarge, b.max)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cappedBody) Close() error { return b.rc.Close() }
