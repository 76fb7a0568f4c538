package outbound

import (
	"errors"
	"io"
)

// ErrBodyTooLarge is what a capped body's Read returns once the body is
// known to exceed its limit.
var ErrBodyTooLarge = errors.New("response body too large")

// CapBody wraps a response body so that reading more than limit bytes fails
// with ErrBodyTooLarge, calling onOverflow (when not nil) first. It looks
// one byte ahead at the limit, so a reader that itself stops at the limit
// (as oauth2 does at 1 MiB) still sees the error instead of a silently cut
// body.
func CapBody(rc io.ReadCloser, limit int64, onOverflow func()) io.ReadCloser {
	return &cappedBody{rc: rc, left: limit, onOverflow: onOverflow}
}

type cappedBody struct {
	rc         io.ReadCloser
	left       int64
	onOverflow func()
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, b.tooLarge()
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if b.left == 0 && err == nil {
		var one [1]byte
		m, perr := io.ReadFull(b.rc, one[:])
		if m > 0 {
			return n, b.tooLarge()
		}
		if perr != nil && !errors.Is(perr, io.EOF) && !errors.Is(perr, io.ErrUnexpectedEOF) {
			return n, perr
		}
		return n, io.EOF
	}
	return n, err
}

func (b *cappedBody) tooLarge() error {
	if b.onOverflow != nil {
		b.onOverflow()
	}
	return ErrBodyTooLarge
}

func (b *cappedBody) Close() error { return b.rc.Close() }
